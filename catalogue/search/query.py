"""Engine-independent search requests and results.

This is the minimal query model the foundation needs (text, term filters, facet counts, paging);
every backend translates it, and the contract suite checks they agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Terms:
    """Match documents whose ``field`` has any of ``values`` (OR)."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Range:
    """``gte``/``lte`` bounds on a numeric field; either may be open."""

    field: str
    gte: float | None = None
    lte: float | None = None


Filter = Terms | Range


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None
    filters: tuple[Filter, ...] = ()
    any_of: tuple[tuple[Filter, ...], ...] = ()  # each inner tuple: at least one must match
    facets: tuple[str, ...] = ()
    facet_size: int = 50
    size: int = 20
    offset: int = 0
    sort: str | None = None  # a keyword/number field; prefix '-' for descending; None: relevance


@dataclass
class SearchResult:
    total: int
    ids: list[str]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    raw: Any = None
