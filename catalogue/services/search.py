"""Dataset search: from user parameters to an engine request, and from hits to a result page.

Facets are declared as data in the index definition (``mappings/datasets/vN.json``): which field
each counts, its label, its vocabulary and whether it is hierarchical. Selections on a facet are
OR-ed, facets are AND-ed, and every facet keeps counting its other values (multi-select).
Coded selections (conditions, modalities, body parts) accept vocabulary ids, codes in any
system, IRIs and labels, and match descendants unless ``descendants`` is off.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from catalogue.errors import ValidationError
from catalogue.ontology import get_vocabulary
from catalogue.search.analysis import stem, words
from catalogue.search.mappings import FacetDef, IndexDefinition, load_definition
from catalogue.search.query import (
    Concept,
    FacetRequest,
    Filter,
    Range,
    SearchRequest,
    SearchResult,
    Terms,
)

SORTS = ("relevance", "-modified", "modified", "-number_of_individuals",
         "number_of_individuals", "-number_of_studies", "number_of_studies")
#: numeric range parameters: name → (index field, bound); ages and periods overlap-match
RANGES: dict[str, tuple[str, str]] = {
    "individuals_min": ("number_of_individuals", "gte"),
    "individuals_max": ("number_of_individuals", "lte"),
    "studies_min": ("number_of_studies", "gte"),
    "studies_max": ("number_of_studies", "lte"),
    "age_min": ("max_age", "gte"),   # the dataset's ages reach up to at least this age
    "age_max": ("min_age", "lte"),   # ... and start at or below this one
}
DATE_RANGES: dict[str, tuple[str, str]] = {
    "modified_since": ("modified", "gte"),
    "modified_until": ("modified", "lte"),
    "acquired_from": ("temporal_end", "gte"),    # acquisition period overlaps [from, to]
    "acquired_to": ("temporal_start", "lte"),
}
MAX_WINDOW = 10_000  # offset paging limit; beyond it use sort + after


@dataclass
class SearchParams:
    text: str | None = None
    selections: dict[str, list[str]] = field(default_factory=dict)  # facet name → values
    ranges: dict[str, str] = field(default_factory=dict)            # RANGES/DATE_RANGES names
    descendants: bool = True
    sort: str | None = None
    page: int = 1
    size: int = 20
    after: int | None = None
    lang: str = "en"

    @classmethod
    def from_args(cls, args: Mapping[str, list[str]], definition: IndexDefinition) -> SearchParams:
        """Parse query-string arguments (``name → [values]``); unknown names are refused."""
        def one(name: str) -> str | None:
            values = args.get(name) or []
            return values[-1] if values else None

        known = {"q", "page", "size", "sort", "after", "lang", "descendants",
                 *RANGES, *DATE_RANGES, *(f.name for f in definition.facets)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ValidationError(
                f"unknown search parameter {unknown[0]!r}; facets are "
                f"{', '.join(f.name for f in definition.facets)}")
        params = cls(text=(one("q") or "").strip() or None, lang=one("lang") or "en")
        params.selections = {f.name: [v for v in args[f.name] if v] for f in definition.facets
                             if args.get(f.name)}
        params.ranges = {k: v for k in (*RANGES, *DATE_RANGES) if (v := one(k))}
        params.descendants = (one("descendants") or "true").lower() not in ("false", "0", "no")
        params.sort = one("sort")
        params.page = bounded_int(one("page"), "page", 1, 1, MAX_WINDOW)
        params.size = bounded_int(one("size"), "size", 20, 1, 100)
        after = one("after")
        params.after = bounded_int(after, "after", 0, 0, 2**63 - 1) if after else None
        return params


def bounded_int(value: str | None, name: str, default: int, low: int, high: int) -> int:
    """A query parameter as a whole number in ``[low, high]`` (``default`` when absent)."""
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValidationError(f"query parameter {name!r} must be an integer") from None
    if not low <= number <= high:
        raise ValidationError(f"query parameter {name!r} must be between {low} and {high}")
    return number


def _epoch(text: str, name: str) -> float:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValidationError(f"{name} must be a date (YYYY-MM-DD) or date-time") from None
        value = datetime(day.year, day.month, day.day, tzinfo=UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def resolve_selection(facet: FacetDef, value: str) -> str:
    """A selected facet value as stored in the index (vocabulary id when it resolves)."""
    if facet.vocabulary:
        concept = get_vocabulary(facet.vocabulary).resolve(value)
        if concept is not None:
            return concept.id
    return value


def build_request(params: SearchParams, visibility: Mapping[str, Any],
                  definition: IndexDefinition | None = None) -> SearchRequest:
    """The engine request for ``params``, restricted by ``visibility`` (filters/any_of)."""
    definition = definition or load_definition("datasets")
    filters: list[Filter] = list(visibility.get("filters", ()))
    for name, raw in params.ranges.items():
        if name in RANGES:
            target, bound = RANGES[name]
            number = float(bounded_int(raw, name, 0, 0, 10**9))
        else:
            target, bound = DATE_RANGES[name]
            number = _epoch(raw, name)
        filters.append(Range(target, gte=number) if bound == "gte" else Range(target, lte=number))
    selections: list[tuple[str, Filter]] = []
    for facet in definition.facets:
        values = params.selections.get(facet.name)
        if not values:
            continue
        resolved = tuple(dict.fromkeys(resolve_selection(facet, v) for v in values))
        base_field = _base_field(definition, facet)
        if facet.hierarchical and base_field is not None:
            selections.append((facet.name, Concept(base_field, resolved, params.descendants)))
        else:
            selections.append((facet.name, Terms(facet.field, resolved)))
    sort = params.sort
    if sort in (None, "relevance"):
        sort = None if params.text else "-modified"
    elif sort not in SORTS:
        raise ValidationError(f"sort must be one of {', '.join(SORTS)}")
    if params.after is not None and sort is None:
        raise ValidationError("after (deep paging) needs a sort other than relevance")
    offset = (params.page - 1) * params.size
    if params.after is None and offset + params.size > MAX_WINDOW:
        raise ValidationError(f"pages beyond {MAX_WINDOW} hits need sort and after")
    return SearchRequest(
        text=params.text,
        filters=tuple(filters),
        any_of=tuple(visibility.get("any_of", ())),
        facet_filters=tuple(selections),
        facets=tuple(FacetRequest(f.name, f.field) for f in definition.facets),
        size=params.size,
        offset=0 if params.after is not None else offset,
        sort=sort,
        search_after=params.after,
    )


def _base_field(definition: IndexDefinition, facet: FacetDef) -> str | None:
    """The field whose ``path_field`` is the facet's field (e.g. conditions for
    conditions_path)."""
    for fdef in definition.fields.values():
        if fdef.path_field == facet.field:
            return fdef.name
    return None


# -- results ----------------------------------------------------------------------------------
def facet_listing(result: SearchResult, params: SearchParams, definition: IndexDefinition,
                  labels: Mapping[str, Mapping[str, str]]) -> list[dict[str, Any]]:
    """Facets in declaration order, each with buckets ``{key, label, count, selected}``
    (hierarchical facets nest ``children``), sorted by count then key."""
    out = []
    for facet in definition.facets:
        counts = sorted(result.facets.get(facet.name, []), key=lambda kv: (-kv[1], kv[0]))
        chosen = {resolve_selection(facet, v) for v in params.selections.get(facet.name, [])}
        names = labels.get(facet.name, {})

        def label(key: str, facet: FacetDef = facet, names: Mapping[str, str] = names) -> str:
            if facet.vocabulary:
                vocab = get_vocabulary(facet.vocabulary)
                if vocab.get(key) is not None:
                    return vocab.label(key, params.lang)
            return names.get(key) or key

        buckets = [{"key": k, "label": label(k), "count": c, "selected": k in chosen}
                   for k, c in counts]
        if facet.hierarchical and facet.vocabulary:
            buckets = _nest(buckets, facet.vocabulary)
        out.append({"name": facet.name, "label": facet.label, "hierarchical": facet.hierarchical,
                    "vocabulary": facet.vocabulary, "buckets": buckets})
    return out


def _nest(buckets: list[dict[str, Any]], vocabulary: str) -> list[dict[str, Any]]:
    """Buckets under their nearest ancestor that has a bucket (unknown codes stay at the top)."""
    vocab = get_vocabulary(vocabulary)
    by_key = {b["key"]: {**b, "children": []} for b in buckets}
    roots: list[dict[str, Any]] = []
    for bucket in buckets:
        node = by_key[bucket["key"]]
        parent = None
        if vocab.get(bucket["key"]) is not None:
            parent = next((a for a in vocab.ancestors(bucket["key"]) if a in by_key), None)
        (by_key[parent]["children"] if parent else roots).append(node)
    return roots


_WORD = re.compile(r"\w+", re.UNICODE)


@functools.lru_cache(maxsize=50_000)
def _word_keys(word: str, languages: tuple[str, ...]) -> tuple[frozenset[str], frozenset[str]]:
    """A word of the text folded (it may fold to several, e.g. a ligature), and the stems of
    those in ``languages``: what a query word is matched against."""
    folded = words(word)
    return frozenset(folded), frozenset(
        found for w in folded for lang in languages if (found := stem(lang, w)))


def highlight(text: str, query: str | None, languages: tuple[str, ...] = ("english",),
              limit: int | None = None) -> str | None:
    """``text`` HTML-escaped with the words matching ``query`` (folded, or sharing a stem) in
    ``<mark>``; with ``limit``, a snippet of about that many characters around the first match.
    None when nothing matches."""
    if not query or not text:
        return None
    wanted = set(words(query))
    stems = {s for w in wanted for lang in languages if (s := stem(lang, w))}
    spans = []
    for match in _WORD.finditer(text):
        folded, word_stems = _word_keys(match.group(), languages)
        if not folded.isdisjoint(wanted) or not word_stems.isdisjoint(stems):
            spans.append((match.start(), match.end()))
    if not spans:
        return None
    start, end = 0, len(text)
    if limit is not None and len(text) > limit:
        start = max(0, spans[0][0] - limit // 3)
        end = min(len(text), start + limit)
    out: list[str] = []
    cursor = start
    for first, last in spans:
        if first < start or last > end:
            continue
        out.append(html.escape(text[cursor:first]))
        out.append(f"<mark>{html.escape(text[first:last])}</mark>")
        cursor = last
    out.append(html.escape(text[cursor:end]))
    return ("…" if start > 0 else "") + "".join(out) + ("…" if end < len(text) else "")




@functools.cache
def _stemmers() -> dict[str, str]:
    """The stemmer of each language tag of the datasets index."""
    return {tag: f.language or "english"
            for tag, f in load_definition("datasets").language_fields().items()}


def highlights(title: Mapping[str, str], description: Mapping[str, str],
               query: str | None) -> dict[str, str]:
    """Highlighted title and description snippet (the first language with a match)."""
    out: dict[str, str] = {}
    stemmers = _stemmers()
    for name, values, limit in (("title", title, None), ("description", description, 240)):
        for lang, text in values.items():
            languages = tuple(dict.fromkeys(
                ["english", stemmers.get((lang or "en").split("-")[0], "english")]))
            marked = highlight(text, query, languages, limit)
            if marked:
                out[name] = marked
                break
    return out


def access_label(iri: str) -> str:
    return iri.rstrip("/").rsplit("/", 1)[-1].replace("_", " ").capitalize()

