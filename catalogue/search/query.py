"""Engine-independent search requests and results.

Every backend translates a :class:`SearchRequest`; the conformance suite checks that they give
identical totals, hits and facet counts.

Semantics:
- ``text``: every word (tokenised like the indices' analysers) must match at least one text
  field, in its folded form or, for language fields, its stemmed form;
- ``filters`` all apply (AND); each group of ``any_of`` needs one match;
- ``facet_filters`` are the user's facet selections as ``(facet name, filter)``: they filter the
  hits, and each facet's counts ignore that facet's own selection (OR within a facet, AND across
  facets; a selected facet keeps showing counts for its other values);
- ``sort`` is ``None`` (relevance; offset paging), or ``field`` / ``-field`` on a field with a
  unique sort key, which also allows ``search_after`` deep paging with the cursor of the last
  hit (``SearchResult.cursors``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple


@dataclass(frozen=True)
class Terms:
    """Match documents whose ``field`` has any of ``values`` (OR)."""

    field: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Range:
    """``gte``/``lte`` bounds on a numeric or date field (dates as epoch seconds); either may be
    open."""

    field: str
    gte: float | None = None
    lte: float | None = None


@dataclass(frozen=True)
class Exists:
    """Match documents that have a value in ``field``."""

    field: str


@dataclass(frozen=True)
class Concept:
    """Match documents coded with any of ``values`` (vocabulary ids) in ``field``, or with one
    of their descendants when ``descendants`` (through the field's ``path_field``)."""

    field: str
    values: tuple[str, ...]
    descendants: bool = True


@dataclass(frozen=True)
class Not:
    """Match documents that do not match ``filter``."""

    filter: Filter


@dataclass(frozen=True)
class Nested:
    """Match documents with at least one nested item (``path``, e.g. a subject's studies) that
    matches every one of ``filters`` (one per field; fields named ``path.field``)."""

    path: str
    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class AllOf:
    """Match documents that match every one of ``filters`` (none: every document)."""

    filters: tuple[Filter, ...]


@dataclass(frozen=True)
class AnyOf:
    """Match documents that match at least one of ``filters`` (none: no document)."""

    filters: tuple[Filter, ...]


Filter = Terms | Range | Exists | Concept | Not | Nested | AllOf | AnyOf


@dataclass(frozen=True)
class FacetRequest:
    """Count the values of ``field`` under the name ``name`` (the top ``size`` by count)."""

    name: str
    field: str
    size: int = 200


@dataclass(frozen=True)
class SearchRequest:
    text: str | None = None
    filters: tuple[Filter, ...] = ()
    any_of: tuple[tuple[Filter, ...], ...] = ()  # each inner tuple: at least one must match
    facet_filters: tuple[tuple[str, Filter], ...] = ()
    facets: tuple[FacetRequest | str, ...] = ()
    facet_size: int = 200
    size: int = 20
    offset: int = 0
    sort: str | None = None  # None: relevance; "field" or "-field" (a field with a sort key)
    search_after: int | None = None  # the cursor of the last hit of the previous page

    def facet_requests(self) -> tuple[FacetRequest, ...]:
        return tuple(
            f if isinstance(f, FacetRequest) else FacetRequest(f, f, self.facet_size)
            for f in self.facets
        )


@dataclass
class SearchResult:
    total: int
    ids: list[str]
    facets: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    cursors: list[int] = field(default_factory=list)  # per hit, when sorted by a field
    raw: Any = None


def lower(flt: Filter, definition: Any) -> Filter:
    """``flt`` with :class:`Concept` filters turned into :class:`Terms` on the right field (the
    path field for descendants), so that backends only translate plain filters."""
    from catalogue.errors import ValidationError

    if isinstance(flt, Concept):
        fdef = definition.fields.get(flt.field)
        if fdef is None:
            raise ValidationError(f"unknown search field {flt.field!r}")
        target = fdef.path_field if flt.descendants and fdef.path_field else flt.field
        return Terms(target, flt.values)
    if isinstance(flt, Not):
        return Not(lower(flt.filter, definition))
    if isinstance(flt, AllOf | AnyOf):
        return type(flt)(tuple(lower(f, definition) for f in flt.filters))
    if isinstance(flt, Nested):
        return Nested(flt.path, tuple(lower(f, definition) for f in flt.filters))
    return flt


def sort_field(definition: Any, sort: str) -> tuple[str, bool]:
    """The key field to sort on for ``sort`` ("field" or "-field") and whether descending."""
    from catalogue.errors import ValidationError

    name = sort.lstrip("-")
    fdef = definition.fields.get(name)
    if fdef is None or fdef.sort_key is None:
        sortable = sorted(f.name for f in definition.fields.values() if f.sort_key)
        raise ValidationError(f"cannot sort by {name!r}; use one of {', '.join(sortable)}")
    return fdef.sort_key, sort.startswith("-")


def after_range(key_field: str, descending: bool, cursor: int) -> Range:
    """The filter that continues a sorted listing after the hit whose key is ``cursor``."""
    return Range(key_field, lte=cursor - 1) if descending else Range(key_field, gte=cursor + 1)


class CountCell(NamedTuple):
    """One cell of a cohort count: the parents (subjects) that match the request's filters
    plus ``filters`` (all) and ``any_of`` (one, when given), and, of their nested items (the
    subjects' studies) with a rank up to the request's cap, those that match one of the
    conjunctions in ``items`` (every item when ``items`` is empty). Item filters name nested
    fields (``studies.modalities_path``). A named tuple: a grouped question makes thousands
    (a frozen dataclass cost about a microsecond each)."""

    filters: tuple[Filter, ...] = ()
    any_of: tuple[Filter, ...] = ()
    items: tuple[tuple[Filter, ...], ...] = ()


class CellRun(NamedTuple):
    """Cells that are ``base`` with one more filter each, ``Terms(field, (value,))`` for each of
    ``values`` in order: what a question grouped by one subject attribute asks (a cell per
    dataset), stated once instead of a thousand times. A request lists it where its cells
    would be; they are counted and answered as if listed one by one."""

    base: CountCell
    field: str
    values: tuple[str, ...]

    def cells(self) -> list[CountCell]:
        """The run's cells, one by one."""
        base = self.base
        return [CountCell((*base.filters, Terms(self.field, (v,))), base.any_of, base.items)
                for v in self.values]


@dataclass(frozen=True)
class CountRequest:
    """Exact parent and item counts for many cells of one query (cohort feasibility)."""

    path: str                                # the nested items counted ("studies")
    cells: tuple[CountCell | CellRun, ...]   # a run stands for its cells, in order
    filters: tuple[Filter, ...] = ()
    any_of: tuple[tuple[Filter, ...], ...] = ()
    item_cap: int = 20                       # items of rank above this are not counted

    def size(self) -> int:
        """The number of cells (a run counts for each of its cells): of counts answered."""
        return sum(len(c.values) if isinstance(c, CellRun) else 1 for c in self.cells)


@dataclass(frozen=True)
class CellGroup:
    """Cells that differ only by one value of one plain field: one terms aggregation
    answers them all (``field`` is ``None`` for a cell answered on its own)."""

    base: CountCell
    field: str | None
    values: dict[str, int]  # value -> index of the cell in the request


def group_cells(cells: tuple[CountCell | CellRun, ...], definition: Any) -> list[CellGroup]:
    """Batch cells whose last filter is a single-value ``Terms`` on a plain (not nested)
    keyword field, all else equal, so that engines answer them with one terms aggregation.
    (Runs of such cells, as cohort plans make them, are recognised without hashing; a
    ``CellRun`` on such a field, of distinct values, is one group as it comes.)"""
    groups: dict[tuple[Any, ...], CellGroup] = {}
    out: list[CellGroup] = []
    plain: dict[str, bool] = {}

    def is_plain(field: str) -> bool:
        ok = plain.get(field)
        if ok is None:
            fdef = definition.fields.get(field)
            ok = plain[field] = (fdef is not None and not fdef.nested
                                 and fdef.type == "keyword")
        return ok

    last_group: CellGroup | None = None
    position = -1
    for item in cells:
        if isinstance(item, CellRun):
            start = position + 1
            values = dict(zip(item.values, range(start, start + len(item.values)),
                              strict=True))
            if is_plain(item.field) and len(values) == len(item.values):
                out.append(CellGroup(item.base, item.field, values))
                position += len(item.values)
                last_group = None
                continue
            run: list[CountCell] | tuple[CountCell] = item.cells()  # one by one, as listed
        else:
            run = (item,)
        for cell in run:
            position += 1
            last = cell.filters[-1] if cell.filters else None
            if isinstance(last, Terms) and len(last.values) == 1 and is_plain(last.field):
                value = str(last.values[0])
                base_filters = cell.filters[:-1]
                group = last_group
                if (group is None or group.field != last.field
                        or group.base.filters != base_filters
                        or group.base.any_of != cell.any_of or group.base.items != cell.items
                        or value in group.values):
                    base = CountCell(base_filters, cell.any_of, cell.items)
                    key = (base, last.field)
                    group = groups.get(key)
                    if group is None or value in group.values:
                        group = CellGroup(base, last.field, {})
                        groups[key] = group
                        out.append(group)
                group.values[value] = position
                last_group = group
                continue
            out.append(CellGroup(cell, None, {"": position}))
    return out
