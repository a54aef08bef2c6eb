"""The search backend contract.

A backend stores *physical* indices built from a versioned definition (``mappings/``) and exposes
each through a *logical* name (an alias). Rebuilds create a new physical index, fill it, and
switch the alias atomically, so readers never see a half-built index.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from catalogue.search.mappings import IndexDefinition
from catalogue.search.query import CountRequest, SearchRequest, SearchResult


@dataclass(frozen=True)
class Upsert:
    id: str
    document: dict[str, Any]


@dataclass(frozen=True)
class Delete:
    id: str


Action = Upsert | Delete


@dataclass
class BulkResult:
    applied: int = 0
    errors: list[str] = field(default_factory=list)


class PendingCounts:
    """Counts on their way (:meth:`SearchBackend.start_count`): :meth:`result` waits for them;
    leaving a ``with`` block without it abandons them."""

    def __init__(self, result: Callable[[], list[tuple[int, int]]],
                 abandon: Callable[[], None] = lambda: None) -> None:
        self._result = result
        self._abandon: Callable[[], None] | None = abandon

    def result(self) -> list[tuple[int, int]]:
        self._abandon = None
        return self._result()

    def __enter__(self) -> PendingCounts:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._abandon is not None:
            self._abandon()


#: threads counting for :meth:`SearchBackend.start_count`'s default, per process
COUNT_THREADS = 16
_counting: ThreadPoolExecutor | None = None
_counting_lock = threading.Lock()


def _count_threads() -> ThreadPoolExecutor:
    global _counting
    with _counting_lock:
        if _counting is None:
            _counting = ThreadPoolExecutor(COUNT_THREADS, thread_name_prefix="catalogue-count")
        return _counting


class SearchBackend(abc.ABC):
    """An Elasticsearch-like engine holding the catalogue's derived indices."""

    name: str = "abstract"

    @abc.abstractmethod
    def ping(self) -> dict[str, Any]:
        """Return details (engine, version, nodes, health) or raise ``SearchUnavailable``."""

    @abc.abstractmethod
    def create_index(self, definition: IndexDefinition) -> str:
        """Create a new, empty physical index for ``definition``; return its name.

        The logical alias is not touched: call :meth:`switch_alias` when the index is filled.
        """

    @abc.abstractmethod
    def current_index(self, logical: str) -> str | None:
        """The physical index the logical name points to, or ``None`` if there is none."""

    @abc.abstractmethod
    def switch_alias(self, logical: str, physical: str) -> None:
        """Point ``logical`` at ``physical`` atomically (readers see the old or the new)."""

    @abc.abstractmethod
    def list_indices(self, logical: str) -> list[str]:
        """Physical indices that belong to ``logical`` (current or not)."""

    @abc.abstractmethod
    def drop_index(self, physical: str) -> None:
        """Delete a physical index. Dropping the current one is refused."""

    @abc.abstractmethod
    def bulk(self, index: str, actions: Sequence[Action]) -> BulkResult:
        """Apply upserts/deletes (idempotent) to ``index`` (logical or physical).

        Raises ``SearchUnavailable`` if the engine cannot be reached; nothing is then assumed
        applied, so the caller keeps its outbox entries.
        """

    def fill(self, index: str, batches: Iterable[Sequence[Action]]) -> BulkResult:
        """Load a new physical index, not yet behind its alias (a rebuild), from ``batches``.

        ``batches`` may be made lazily, while the engine takes the earlier ones in: the engine
        need not make anything visible or durable before the end, where everything loaded is
        refreshed. An error leaves the index incomplete; the caller drops it. The default
        sends every batch through :meth:`bulk`, then refreshes.
        """
        result = BulkResult()
        for actions in batches:
            done = self.bulk(index, actions)
            result.applied += done.applied
            result.errors += done.errors
        self.refresh(index)
        return result

    @abc.abstractmethod
    def refresh(self, index: str) -> None:
        """Make everything applied so far visible to searches."""

    @abc.abstractmethod
    def count(self, index: str, filters: Iterable[Any] = ()) -> int:
        """Number of documents matching all ``filters`` (``Terms``/``Range``)."""

    @abc.abstractmethod
    def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        """The stored fields of one document, or ``None``."""

    @abc.abstractmethod
    def search(self, index: str, request: SearchRequest) -> SearchResult:
        """Run ``request``; ids in rank (or sort) order, total exact, facet counts."""

    @abc.abstractmethod
    def count_cells(self, index: str, request: CountRequest) -> list[tuple[int, int]]:
        """Exact ``(parents, items)`` counts for every cell of ``request``, in order: the
        parents matching the cell, and their nested items (rank up to the cap) matching one
        of the cell's item conjunctions. Cohort counts are built on this."""

    def start_count(self, index: str, request: CountRequest) -> PendingCounts:
        """:meth:`count_cells`, started: the caller works while the engine counts, then takes
        ``result()``. The default counts in another thread (an engine in this process, whose
        search lets the interpreter go); a remote engine sends the request now and reads its
        answer in the caller's thread."""
        future = _count_threads().submit(self.count_cells, index, request)
        return PendingCounts(future.result)

    def ensure_index(self, definition: IndexDefinition) -> str:
        """Make sure the logical index exists (create and point the alias on first use)."""
        logical = self.logical_name(definition.name)
        current = self.current_index(logical)
        if current is None:
            current = self.create_index(definition)
            self.switch_alias(logical, current)
        return current

    @abc.abstractmethod
    def logical_name(self, name: str) -> str:
        """The alias for an index definition's name (with the configured prefix)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients, writers and file handles."""
