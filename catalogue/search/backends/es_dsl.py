"""Request bodies shared by the Elasticsearch and OpenSearch backends.

Only what Elasticsearch 8/9 and OpenSearch 2/3 all accept belongs here: index mappings and
settings built from a neutral definition, query translation, response parsing. Client calls
(which differ between ``elasticsearch`` and ``opensearch-py``) stay in the backend classes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from catalogue.errors import ValidationError
from catalogue.search import nested
from catalogue.search.mappings import IndexDefinition
from catalogue.search.query import (
    AllOf,
    AnyOf,
    CountRequest,
    Exists,
    Nested,
    Not,
    Range,
    SearchRequest,
    Terms,
    group_cells,
    lower,
    sort_field,
)

_TYPES = {
    "keyword": "keyword",
    "integer": "long",
    "float": "double",
    "date": "date",
    "boolean": "boolean",
}
#: words are runs of letters and digits, as tantivy's ``simple`` tokenizer splits them (the
#: ``standard`` tokenizer would keep "C34.9" or "l'adénocarcinome" whole)
_WORDS = {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}
_SNOWBALL = {"english": "English", "german": "German", "french": "French", "spanish": "Spanish",
             "italian": "Italian", "dutch": "Dutch", "portuguese": "Portuguese",
             "swedish": "Swedish", "danish": "Danish", "finnish": "Finnish",
             "hungarian": "Hungarian", "romanian": "Romanian"}


def index_body(definition: IndexDefinition, shards: int, replicas: int) -> dict[str, Any]:
    """Settings and mappings for a new physical index."""
    analyzer = definition.engine.get("text_analyzer", "catalogue_text")
    analyzers: dict[str, Any] = {
        analyzer: {"type": "custom", "tokenizer": "catalogue_words",
                   "filter": ["lowercase", "asciifolding"]}}
    filters: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for f in definition.fields.values():
        if f.type == "text" and f.language:
            filters[f"stem_{f.language}"] = {"type": "snowball", "language": _SNOWBALL[f.language]}
            analyzers[f"catalogue_{f.language}"] = {
                "type": "custom", "tokenizer": "catalogue_words",
                "filter": ["lowercase", "asciifolding", f"stem_{f.language}"]}
            properties[f.name] = {"type": "text", "analyzer": f"catalogue_{f.language}"}
        elif f.type == "text":
            properties[f.name] = {"type": "text", "analyzer": analyzer}
        else:
            properties[f.name] = {"type": _TYPES[f.type]}
    for path in definition.nested:  # "studies.x" fields become properties of a nested type
        inner = {name.split(".", 1)[1]: properties.pop(name) for name in list(properties)
                 if definition.fields[name].nested == path}
        properties[path] = {"type": "nested", "properties": inner}
    settings = {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        "analysis": {"tokenizer": {"catalogue_words": _WORDS}, "filter": filters,
                     "analyzer": analyzers},
        **definition.engine.get("settings", {}),
    }
    return {"settings": settings, "mappings": {"dynamic": "strict", "properties": properties}}


def _check_field(definition: IndexDefinition, name: str) -> str:
    fdef = definition.fields.get(name)
    if fdef is None:
        raise ValidationError(f"unknown search field {name!r}")
    return fdef.type


def filter_clause(definition: IndexDefinition, flt: Any) -> dict[str, Any]:
    flt = lower(flt, definition)
    if isinstance(flt, Not):
        return {"bool": {"must_not": [filter_clause(definition, flt.filter)]}}
    if isinstance(flt, AllOf):
        return {"bool": {"filter": [filter_clause(definition, f) for f in flt.filters]}}
    if isinstance(flt, AnyOf):
        if not flt.filters:
            return {"bool": {"must_not": [{"match_all": {}}]}}
        return {"bool": {"should": [filter_clause(definition, f) for f in flt.filters],
                         "minimum_should_match": 1}}
    if isinstance(flt, Nested):
        nested.encode(definition, flt.path, flt.filters)  # the same checks as every engine
        return {"nested": {"path": flt.path, "query": {"bool": {"filter": [
            filter_clause(definition, f) for f in flt.filters]}}}}
    ftype = _check_field(definition, flt.field)
    if isinstance(flt, Terms):
        return {"terms": {flt.field: list(flt.values)}}
    if isinstance(flt, Exists):
        return {"exists": {"field": flt.field}}
    if isinstance(flt, Range):
        if ftype not in ("integer", "float", "date"):
            raise ValidationError(f"field {flt.field!r} is not numeric")
        bounds: dict[str, Any] = {}
        fdef = definition.fields[flt.field]
        if fdef.bin is not None:  # binned values: the range covers every bin it touches
            first, last = nested.snap(fdef, flt.gte, flt.lte)
            return {"range": {flt.field: {"gte": first, "lte": last}}}
        if flt.gte is not None:
            bounds["gte"] = _bound(ftype, flt.gte)
        if flt.lte is not None:
            bounds["lte"] = _bound(ftype, flt.lte)
        return {"range": {flt.field: bounds}}
    raise ValidationError(f"unsupported filter {type(flt).__name__}")


def _bound(ftype: str, value: float) -> Any:
    if ftype == "date":
        return datetime.fromtimestamp(float(value), UTC).isoformat()
    if ftype == "integer":
        return int(value)
    return value


def filters_query(
    definition: IndexDefinition, filters: tuple[Any, ...], any_of: tuple[tuple[Any, ...], ...] = ()
) -> dict[str, Any]:
    clauses = [filter_clause(definition, f) for f in filters]
    for group in any_of:
        clauses.append(
            {
                "bool": {
                    "should": [filter_clause(definition, f) for f in group],
                    "minimum_should_match": 1,
                }
            }
        )
    if not clauses:
        return {"match_all": {}}
    return {"bool": {"filter": clauses}}


def text_clauses(definition: IndexDefinition, tokens: list[str]) -> list[dict[str, Any]]:
    """One clause per word: the word must match some text field (each field analyses it with
    its own analyser: folded, or folded and stemmed)."""
    return [{"multi_match": {"query": t, "fields": list(definition.text_fields)}} for t in tokens]


def search_body(
    definition: IndexDefinition, request: SearchRequest, tokens: list[str]
) -> dict[str, Any]:
    """The search request body. ``tokens`` are the words of the text query, tokenised like the
    indices' analysers (the same semantics as the tantivy backend)."""
    must = text_clauses(definition, tokens)
    query: dict[str, Any] = {"bool": {"must": must or [{"match_all": {}}]}}
    filters = list(request.filters)
    sort_key: str | None = None
    descending = False
    if request.sort:
        sort_key, descending = sort_field(definition, request.sort)
    if filters or request.any_of:
        query["bool"]["filter"] = [filters_query(definition, tuple(filters), request.any_of)]
    body: dict[str, Any] = {
        "query": query,
        "size": request.size,
        "from": 0 if request.search_after is not None else request.offset,
        "track_total_hits": True,
        "_source": [definition.id_field, *([sort_key] if sort_key else [])],
    }
    selected = [(name, filter_clause(definition, f)) for name, f in request.facet_filters]
    if selected:
        body["post_filter"] = {"bool": {"filter": [c for _, c in selected]}}
    if sort_key:
        body["sort"] = [{sort_key: {"order": "desc" if descending else "asc"}}]
        if request.search_after is not None:
            # native search_after: the total and the facets still count every match
            body["search_after"] = [request.search_after]
    facets = request.facet_requests()
    if facets:
        aggs: dict[str, Any] = {}
        for facet in facets:
            _check_field(definition, facet.field)
            others = [c for name, c in selected if name != facet.name]
            # every bucket, so counts are exact on any number of shards
            terms = {"terms": {"field": facet.field, "size": facet.size,
                               "shard_size": max(facet.size * 5, 1000)}}
            aggs[facet.name] = {
                "filter": {"bool": {"filter": others}} if others else {"match_all": {}},
                "aggs": {"values": terms},
            }
        body["aggs"] = aggs
    return body


def count_body(definition: IndexDefinition,
               request: CountRequest) -> tuple[dict[str, Any], list[Any]]:
    """The request body answering every cell of a cohort count in one search (each group of
    cells one filter aggregation, with a terms aggregation when the cells differ by one plain
    field's value; items counted by a nested aggregation filtered on rank and the cell's item
    conjunctions), and the cell groups to read the answer with (:func:`parse_counts`)."""
    path = request.path
    if path not in definition.nested:
        raise ValidationError(f"no nested documents {path!r} in the {definition.name} index")
    groups = group_cells(request.cells, definition)
    aggs: dict[str, Any] = {}
    for number, group in enumerate(groups):
        cell = group.base
        clauses = [filter_clause(definition, f) for f in cell.filters]
        if cell.any_of:
            clauses.append({"bool": {"should": [filter_clause(definition, f)
                                                for f in cell.any_of],
                                     "minimum_should_match": 1}})
        item_filters: list[dict[str, Any]] = [
            {"range": {f"{path}.rank": {"gte": 1, "lte": int(request.item_cap)}}}]
        if cell.items and all(cell.items):
            conjunctions = []
            for conj in cell.items:
                lowered = tuple(lower(f, definition) for f in conj)
                nested.encode(definition, path, lowered)  # the same checks as every engine
                conjunctions.append({"bool": {"filter": [filter_clause(definition, f)
                                                         for f in lowered]}})
            item_filters.append({"bool": {"should": conjunctions, "minimum_should_match": 1}})
        counted = {"nested": {"path": path},
                   "aggs": {"m": {"filter": {"bool": {"filter": item_filters}}}}}
        agg: dict[str, Any] = {"filter": {"bool": {"filter": clauses}} if clauses
                               else {"match_all": {}}}
        if group.field is None:
            agg["aggs"] = {"i": counted}
        else:
            values = sorted(group.values)
            agg["aggs"] = {"t": {"terms": {"field": group.field, "include": values,
                                           "size": len(values)},
                                 "aggs": {"i": counted}}}
        aggs[f"g{number}"] = agg
    body = {"size": 0, "track_total_hits": False,
            "query": filters_query(definition, request.filters, request.any_of), "aggs": aggs}
    return body, groups


def parse_counts(response: dict[str, Any], groups: list[Any],
                 cells: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = [(0, 0)] * cells
    aggs = response.get("aggregations", {})
    for number, group in enumerate(groups):
        agg = aggs[f"g{number}"]
        if group.field is None:
            out[group.values[""]] = (int(agg["doc_count"]), int(agg["i"]["m"]["doc_count"]))
            continue
        buckets = {str(b["key"]): b for b in agg["t"]["buckets"]}
        for value, position in group.values.items():
            bucket = buckets.get(value)
            out[position] = ((int(bucket["doc_count"]), int(bucket["i"]["m"]["doc_count"]))
                             if bucket else (0, 0))
    return out


def parse_facets(
    response: dict[str, Any], names: tuple[str, ...]
) -> dict[str, list[tuple[str, int]]]:
    aggs = response.get("aggregations", {})
    return {
        n: [(str(b["key"]), int(b["doc_count"]))
            for b in aggs.get(n, {}).get("values", {}).get("buckets", [])]
        for n in names
    }


def document(definition: IndexDefinition, doc: dict[str, Any]) -> dict[str, Any]:
    """A document ready for the engine (dates as ISO strings, unknown fields refused)."""
    out: dict[str, Any] = {}
    encoded = {n.encoded_as for n in definition.nested.values()}
    for key, value in doc.items():
        if key in definition.nested:  # checked with their "path.field" names, sent as "field"
            items = [document(definition, {f"{key}.{k}": v for k, v in item.items()})
                     for item in value]
            out[key] = [{k.split(".", 1)[1]: v for k, v in item.items()} for item in items]
            continue
        if key in encoded:
            continue  # native nested documents here
        fdef = definition.fields.get(key)
        if fdef is None:
            raise ValidationError(f"field {key!r} is not in the {definition.name} index")
        if value is None or value == []:
            continue
        if fdef.type == "date":
            if isinstance(value, datetime):
                value = (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
            elif isinstance(value, date):
                value = datetime(value.year, value.month, value.day, tzinfo=UTC).isoformat()
        out[key] = value
    return out


def stored(definition: IndexDefinition, source: dict[str, Any]) -> dict[str, Any]:
    """A ``_source`` as ``{field: [values]}``, the shape every backend returns from ``get``."""
    out: dict[str, Any] = {}
    for key, value in source.items():
        fdef = definition.fields.get(key)
        if fdef is None:
            continue
        values = value if isinstance(value, list) else [value]
        if fdef.type == "date":
            values = [
                datetime.fromisoformat(str(v).replace("Z", "+00:00")).isoformat() for v in values
            ]
        out[key] = values
    return out
