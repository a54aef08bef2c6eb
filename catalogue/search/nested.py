"""Nested documents for engines without them: combination tokens.

A subject has several imaging studies; "a CT of the chest at age 50-70" must match within ONE
study. Elasticsearch/OpenSearch index studies as nested documents. For tantivy each study is
encoded as tokens ``dim=value|dim=value…``, one for every combination of values of every
non-empty subset of the dimensions; a nested filter becomes the set of tokens of its allowed
value combinations over the dimensions it constrains. Binned numbers (age bands, years) make
ranges finite; both encodings snap ranges to the same bins, so every engine answers alike.
"""

from __future__ import annotations

import itertools
from typing import Any

from catalogue.errors import ValidationError
from catalogue.search.mappings import FieldDef, IndexDefinition, NestedDef

MAX_TOKENS = 50_000


def _short(name: str) -> str:
    return name.split(".", 1)[1]


def _clean(value: Any) -> str:
    return str(value).replace("|", "¦").replace("=", "≡")


def snap(fdef: FieldDef, gte: float | None, lte: float | None) -> tuple[int, int]:
    """The first and last bin that a ``[gte, lte]`` range touches (open ends: the domain)."""
    assert fdef.bin is not None and fdef.domain is not None
    low, high = fdef.domain
    first = low if gte is None else max(low, int(gte) // fdef.bin * fdef.bin)
    last = high if lte is None else min(high, int(lte) // fdef.bin * fdef.bin)
    return first, last


def study_tokens(nested: NestedDef, item: dict[str, Any]) -> list[str]:
    """The tokens of one nested document (``item`` keyed by short field names): one per
    combination of values of every non-empty subset of the dimensions, joined in dimension
    order (built dimension by dimension: each new dimension extends every token so far)."""
    tokens: list[str] = []
    for dim in nested.dimensions:
        short = _short(dim)
        raw = item.get(short)
        found = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        values = [f"{short}={_clean(v)}" for v in dict.fromkeys(found)]
        if values:
            tokens = tokens + [f"{t}|{v}" for t in tokens for v in values] + values
    return tokens


def allowed_values(definition: IndexDefinition, flt: Any) -> tuple[str, list[str]]:
    """(dimension field, allowed values) of one lowered inner filter (``Terms`` or ``Range``)."""
    from catalogue.search.query import Range, Terms

    fdef = definition.fields.get(flt.field)
    if fdef is None:
        raise ValidationError(f"unknown search field {flt.field!r}")
    if isinstance(flt, Terms):
        return flt.field, [str(v) for v in flt.values]
    if isinstance(flt, Range) and fdef.bin is not None:
        first, last = snap(fdef, flt.gte, flt.lte)
        return flt.field, [str(b) for b in range(first, last + 1, fdef.bin)]
    raise ValidationError(f"{flt.field!r}: only value lists and binned ranges can be combined "
                          "within one nested document")


def encode(definition: IndexDefinition, path: str, filters: tuple[Any, ...]) -> list[str]:
    """The tokens any of which a document must have to contain one nested item matching all
    ``filters`` (already lowered)."""
    nested = definition.nested.get(path)
    if nested is None:
        raise ValidationError(f"no nested documents {path!r} in the {definition.name} index")
    allowed: dict[str, set[str]] = {}
    for flt in filters:
        dim, values = allowed_values(definition, flt)
        if dim not in nested.dimensions:
            raise ValidationError(f"{dim!r} cannot be combined within {path}")
        if dim in allowed:  # values of one item may be lists: two conditions are not one set
            raise ValidationError(f"one condition per field within one nested {path} filter "
                                  f"({dim!r} is given twice)")
        allowed[dim] = set(values)
    if not allowed:
        raise ValidationError(f"a nested filter on {path} needs at least one condition")
    parts = [[f"{_short(dim)}={_clean(v)}" for v in sorted(allowed[dim])]
             for dim in nested.dimensions if dim in allowed]
    count = 1
    for part in parts:
        count *= len(part)
    if count > MAX_TOKENS:
        raise ValidationError(f"the combination of conditions on {path} is too broad; "
                              "narrow the ranges")
    return ["|".join(combo) for combo in itertools.product(*parts)]
