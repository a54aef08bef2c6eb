"""Request bodies shared by the Elasticsearch and OpenSearch backends.

Only what Elasticsearch 8/9 and OpenSearch 2/3 all accept belongs here: index mappings and
settings built from a neutral definition, query translation, response parsing. Client calls
(which differ between ``elasticsearch`` and ``opensearch-py``) stay in the backend classes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from catalogue.errors import ValidationError
from catalogue.search.mappings import IndexDefinition
from catalogue.search.query import Range, SearchRequest, Terms

_TYPES = {
    "keyword": "keyword",
    "integer": "integer",
    "float": "double",
    "date": "date",
    "boolean": "boolean",
}


def index_body(definition: IndexDefinition, shards: int, replicas: int) -> dict[str, Any]:
    """Settings and mappings for a new physical index."""
    analyzer = definition.engine.get("text_analyzer", "standard")
    properties: dict[str, Any] = {}
    for f in definition.fields.values():
        if f.type == "text":
            properties[f.name] = {"type": "text", "analyzer": analyzer}
        else:
            properties[f.name] = {"type": _TYPES[f.type]}
    settings = {
        "number_of_shards": shards,
        "number_of_replicas": replicas,
        **definition.engine.get("settings", {}),
    }
    return {"settings": settings, "mappings": {"dynamic": "strict", "properties": properties}}


def _check_field(definition: IndexDefinition, name: str) -> str:
    fdef = definition.fields.get(name)
    if fdef is None:
        raise ValidationError(f"unknown search field {name!r}")
    return fdef.type


def filter_clause(definition: IndexDefinition, flt: Any) -> dict[str, Any]:
    ftype = _check_field(definition, flt.field)
    if isinstance(flt, Terms):
        return {"terms": {flt.field: list(flt.values)}}
    if isinstance(flt, Range):
        if ftype not in ("integer", "float", "date"):
            raise ValidationError(f"field {flt.field!r} is not numeric")
        bounds: dict[str, Any] = {}
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


def search_body(
    definition: IndexDefinition, request: SearchRequest, tokens: list[str]
) -> dict[str, Any]:
    """The search request body. ``tokens`` are the analysed words of the text query; each must
    match at least one text field (the same semantics as the tantivy backend)."""
    must = [{"multi_match": {"query": t, "fields": list(definition.text_fields)}} for t in tokens]
    query: dict[str, Any] = {"bool": {"must": must or [{"match_all": {}}]}}
    if request.filters or request.any_of:
        query["bool"]["filter"] = [filters_query(definition, request.filters, request.any_of)]
    body: dict[str, Any] = {
        "query": query,
        "size": request.size,
        "from": request.offset,
        "track_total_hits": True,
        "_source": [definition.id_field],
    }
    if request.sort:
        field = request.sort.lstrip("-")
        if _check_field(definition, field) not in ("integer", "float", "date"):
            raise ValidationError(f"cannot sort by {field!r}")
        body["sort"] = [{field: {"order": "desc" if request.sort.startswith("-") else "asc"}}]
    if request.facets:
        for f in request.facets:
            _check_field(definition, f)
        body["aggs"] = {
            f: {"terms": {"field": f, "size": request.facet_size}} for f in request.facets
        }
    return body


def parse_facets(
    response: dict[str, Any], names: tuple[str, ...]
) -> dict[str, list[tuple[str, int]]]:
    aggs = response.get("aggregations", {})
    return {
        n: [(str(b["key"]), int(b["doc_count"])) for b in aggs.get(n, {}).get("buckets", [])]
        for n in names
    }


def document(definition: IndexDefinition, doc: dict[str, Any]) -> dict[str, Any]:
    """A document ready for the engine (dates as ISO strings, unknown fields refused)."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
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
