"""Value kinds: how one property's RDF values become a Python/JSON value, and back.

A profile's mapping tables are rows ``(field, predicate, kind)``; the kind decides what is
read (text per language, IRIs, a non-negative integer, a nested agent...) and how it is
written. Reading never raises on bad data: a value that cannot be read is reported as a
problem naming the property path and the value, and skipped.

JSON views of resources follow JSON-LD conventions so they can be written back: an IRI is a
string (``{"@id": ...}`` when it does not look like one), a literal is a string or
``{"@value", "@language" | "@type"}``, a described resource is a dict keyed by compact IRIs.
"""

from __future__ import annotations

import abc
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Node

from catalogue.dcat.description import Description
from catalogue.dcat.namespaces import DCAT, DCT, RDF, SCHEMA, TIME, XSD, compact, expand

UNTAGGED = "und"  # language key for text without a language tag
IANA_MEDIA_TYPES = "https://www.iana.org/assignments/media-types/"
_IANA_PREFIXES = (IANA_MEDIA_TYPES, "http://www.iana.org/assignments/media-types/")
_IRI = re.compile(
    r"^(?:https?|urn|mailto|tel|ftps?|file|doi|info|tag|data|did|ark):\S+$", re.IGNORECASE
)
_INTEGER = re.compile(r"^\+?[0-9]+$")
_DURATION = re.compile(
    r"^-?P(?=\d|T\d)(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?=\d)(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$"
)
_GYEAR = re.compile(r"^(-?\d{4,})(Z|[+-]\d{2}:\d{2})?$")
_GYEAR_MONTH = re.compile(r"^(-?\d{4,})-(\d{2})(Z|[+-]\d{2}:\d{2})?$")
_DATE = re.compile(r"^(\d{4,})-(\d{2})-(\d{2})(Z|[+-]\d{2}:\d{2})?$")
_MAX_DEPTH = 8
_BOUNDARY_TYPES = frozenset({DCAT.Dataset, DCAT.Catalog})


def looks_like_iri(text: str) -> bool:
    """Whether a JSON string stands for an IRI (else it stands for a literal)."""
    return bool(_IRI.match(text))


def sort_key(term: Node) -> tuple[int, str]:
    order = 0 if isinstance(term, URIRef) else 1 if isinstance(term, Literal) else 2
    if isinstance(term, Literal):
        return order, f"{term}\x00{term.language or ''}\x00{term.datatype or ''}"
    return order, str(term)


def show(term: Node) -> str:
    """A value as quoted in problem messages."""
    text = term.n3() if isinstance(term, URIRef | Literal) else "a blank node"
    return text if len(text) <= 120 else text[:119] + "…"


@dataclass
class ReadContext:
    """What a kind needs to read values: the graph, nested structures, and a problem list."""

    graph: Graph | Description
    structures: Mapping[str, tuple[Row, ...]]
    problems: list[str] = field(default_factory=list)
    depth: int = 0
    #: resources only ever referenced, never expanded (the dataset itself, other datasets)
    references: frozenset[Node] = frozenset()

    def expandable(self, term: Node) -> bool:
        """Whether ``term`` is described here and may be read as a nested resource."""
        if term in self.references or not self.described(term):
            return False
        return not any(t in _BOUNDARY_TYPES for t in self.graph.objects(term, RDF.type))

    def objects(self, subject: Node, predicate: Node) -> list[Node]:
        values = list(self.graph.objects(subject, predicate))
        if len(values) > 1:
            values.sort(key=sort_key)
        return values

    def described(self, term: Node) -> bool:
        return isinstance(term, BNode | URIRef) and (term, None, None) in self.graph

    def problem(self, path: str, value: Node | None, reason: str) -> None:
        shown = f" {show(value)}" if value is not None else ""
        self.problems.append(f"{path}:{shown} {reason}")

    def read_rows(self, subject: Node, rows: tuple[Row, ...], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        present = set(self.graph.predicates(subject))
        for name, predicate, kind in rows:
            if predicate not in present:
                continue
            values = self.objects(subject, predicate)
            if not values:
                continue
            value = kind.read(self, join(path, predicate), values)
            if not kind.empty(value):
                out[name] = value
        return out


@dataclass
class WriteContext:
    graph: Graph
    structures: Mapping[str, tuple[Row, ...]]
    structure_types: Mapping[str, URIRef] = field(default_factory=dict)

    def write_rows(self, subject: Node, rows: tuple[Row, ...], values: Mapping[str, Any]) -> None:
        for name, predicate, kind in rows:
            value = values.get(name)
            if not kind.empty(value):
                kind.write(self, subject, predicate, value)


def join(path: str, predicate: URIRef) -> str:
    name = compact(str(predicate))
    return f"{path} / {name}" if path else name


def iri_or_literal(text: str) -> URIRef | Literal:
    return URIRef(text) if looks_like_iri(text) else Literal(text)


def _dedupe(items: list[Any]) -> list[Any]:
    seen: list[Any] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


class Kind(abc.ABC):
    """How the values of one property are read and written."""

    many: bool = False

    @abc.abstractmethod
    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        """The Python value of ``values`` (sorted, non-empty); report bad ones on ``ctx``."""

    @abc.abstractmethod
    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        """Add the triples for ``value`` (never empty) to ``ctx.graph``."""

    def empty(self, value: Any) -> bool:
        return value is None or value == [] or value == {}

    def _pick(self, items: list[Any]) -> Any:
        items = _dedupe(items)
        if self.many:
            return items
        return items[0] if items else None


#: one mapping-table row: (field name, predicate, kind)
Row = tuple[str, URIRef, Kind]


class Text(Kind):
    """Literals by language: ``{"en": "..."}`` (``many``: ``{"en": ["...", ...]}``)."""

    def __init__(self, many: bool = False) -> None:
        self.many = many

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        out: dict[str, Any] = {}
        for value in values:
            if not isinstance(value, Literal):
                ctx.problem(path, value, "is not text")
                continue
            language = value.language or UNTAGGED
            if self.many:
                texts = out.setdefault(language, [])
                if str(value) not in texts:
                    texts.append(str(value))
            else:
                out.setdefault(language, str(value))
        return out

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for language, texts in value.items():
            lang = None if language == UNTAGGED else language
            for text in _as_list(texts):
                ctx.graph.add((subject, predicate, Literal(text, lang=lang)))


class Strings(Kind):
    """Literal values as strings, any language."""

    def __init__(self, many: bool = False) -> None:
        self.many = many

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        out = []
        for value in values:
            if isinstance(value, Literal):
                out.append(str(value))
            else:
                ctx.problem(path, value, "is not text")
        return self._pick(out)

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for text in _as_list(value):
            ctx.graph.add((subject, predicate, Literal(text)))


class Iri(Kind):
    """IRIs as strings. Literals that are IRIs are accepted; blank nodes are left to the graph."""

    def __init__(self, many: bool = False) -> None:
        self.many = many

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        out = []
        for value in values:
            if isinstance(value, URIRef):
                out.append(str(value))
            elif isinstance(value, Literal):
                if looks_like_iri(str(value).strip()):
                    out.append(str(value).strip())
                else:
                    ctx.problem(path, value, "is not an IRI")
        return self._pick(out)

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for iri in _as_list(value):
            ctx.graph.add((subject, predicate, URIRef(iri)))


class Term(Kind):
    """IRIs or literals, both as strings (codes such as conditions)."""

    def __init__(self, many: bool = False) -> None:
        self.many = many

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        return self._pick([str(v) for v in values if isinstance(v, URIRef | Literal)])

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for text in _as_list(value):
            ctx.graph.add((subject, predicate, iri_or_literal(text)))


class Emails(Kind):
    """E-mail addresses without ``mailto:``; written as ``mailto:`` IRIs or as literals."""

    many = True

    def __init__(self, as_iri: bool = True) -> None:
        self.as_iri = as_iri

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        out = []
        for value in values:
            if isinstance(value, BNode):
                continue
            text = str(value).strip()
            out.append(text[7:] if text.lower().startswith("mailto:") else text)
        return _dedupe(out)

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for address in _as_list(value):
            term = URIRef(f"mailto:{address}") if self.as_iri else Literal(address)
            ctx.graph.add((subject, predicate, term))


class NonNegativeInteger(Kind):
    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            text = str(value).strip() if isinstance(value, Literal) else None
            if text is not None and _INTEGER.match(text):
                return int(text)
            if text is not None and re.match(r"^\+?[0-9]+\.0*$", text):
                return int(text.split(".")[0])
            ctx.problem(path, value, "is not a non-negative integer")
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        ctx.graph.add(
            (subject, predicate, Literal(str(int(value)), datatype=XSD.nonNegativeInteger))
        )


class DecimalNumber(Kind):
    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            try:
                number = Decimal(str(value).strip()) if isinstance(value, Literal) else None
            except InvalidOperation:
                number = None
            if number is not None and number.is_finite():
                return float(number)
            ctx.problem(path, value, "is not a decimal number")
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        text = format(Decimal(str(value)), "f")
        ctx.graph.add((subject, predicate, Literal(text, datatype=XSD.decimal)))


class Boolean(Kind):
    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            text = str(value).strip().lower() if isinstance(value, Literal) else ""
            if text in ("true", "1"):
                return True
            if text in ("false", "0"):
                return False
            ctx.problem(path, value, "is not a boolean")
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        ctx.graph.add((subject, predicate, Literal("true" if value else "false",
                                                   datatype=XSD.boolean)))


def parse_temporal(text: str, end: bool = False) -> datetime | None:
    """A date/dateTime/gYear/gYearMonth lexical form as a UTC-aware datetime, or None.

    Partial dates are widened: a year is its first day, or its last day when ``end``.
    """
    text = text.strip()
    try:
        if "T" in text:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        match = _DATE.match(text)
        if match:
            day = date(int(match[1]), int(match[2]), int(match[3]))
        elif (match := _GYEAR_MONTH.match(text)) is not None:
            year, month = int(match[1]), int(match[2])
            day = date(year, month, 1)
            if end:
                day = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        elif (match := _GYEAR.match(text)) is not None:
            day = date(int(match[1]), 12, 31) if end else date(int(match[1]), 1, 1)
        else:
            return None
    except ValueError:
        return None
    return datetime.combine(day, time(), tzinfo=UTC)


def temporal_datatype(text: str) -> URIRef:
    if "T" in text:
        return XSD.dateTime
    if _DATE.match(text):
        return XSD.date
    if _GYEAR_MONTH.match(text):
        return XSD.gYearMonth
    if _GYEAR.match(text):
        return XSD.gYear
    return XSD.string


class DateTimeValue(Kind):
    """A date or date-time as ``datetime`` (UTC if the literal has no offset)."""

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            parsed = parse_temporal(str(value)) if isinstance(value, Literal) else None
            if parsed is not None:
                return parsed
            ctx.problem(path, value, "is not a date or date-time")
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        if isinstance(value, str):
            value = parse_temporal(value) or value
        if isinstance(value, datetime):
            midnight = value.time() == time() and value.utcoffset() in (None, UTC.utcoffset(None))
            literal = (
                Literal(value.date().isoformat(), datatype=XSD.date)
                if midnight
                else Literal(value.isoformat(), datatype=XSD.dateTime)
            )
        elif isinstance(value, date):
            literal = Literal(value.isoformat(), datatype=XSD.date)
        else:
            literal = Literal(str(value))
        ctx.graph.add((subject, predicate, literal))


class TemporalText(Kind):
    """A date, date-time, year or year-month, kept as its lexical form (JSON string)."""

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            text = str(value).strip() if isinstance(value, Literal) else ""
            if parse_temporal(text) is not None:
                return text
            ctx.problem(path, value, "is not a date or date-time")
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        ctx.graph.add((subject, predicate, Literal(value, datatype=temporal_datatype(value))))


class Duration(Kind):
    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            text = str(value).strip() if isinstance(value, Literal) else ""
            if _DURATION.match(text):
                return text
            ctx.problem(path, value, "is not an xsd:duration")
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        ctx.graph.add((subject, predicate, Literal(value, datatype=XSD.duration)))


class MediaType(Kind):
    """IANA media types as ``type/subtype``; other values as given."""

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        for value in values:
            if isinstance(value, BNode):
                continue
            text = str(value).strip()
            for prefix in _IANA_PREFIXES:
                if text.startswith(prefix):
                    return text[len(prefix) :]
            return text
        return None

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        term: Node
        if "/" in value and not looks_like_iri(value):
            term = URIRef(IANA_MEDIA_TYPES + value)
        else:
            term = iri_or_literal(value)
        ctx.graph.add((subject, predicate, term))


_START = (DCAT.startDate, SCHEMA.startDate)
_END = (DCAT.endDate, SCHEMA.endDate)
_INSTANT = (TIME.inXSDDate, TIME.inXSDDateTimeStamp, TIME.inXSDDateTime, TIME.inXSDgYear,
            TIME.inXSDgYearMonth)


class Periods(Kind):
    """``dct:PeriodOfTime`` values as ``[{"start": "2021-01-01", "end": "2023-12-31"}]``.

    Start and end come from ``dcat:startDate``/``endDate``, ``schema:startDate``/``endDate``
    (DCAT-AP 2) or ``time:hasBeginning``/``hasEnd`` instants.
    """

    many = True

    def _bound(self, ctx: ReadContext, node: Node, path: str, direct: tuple[URIRef, ...],
               instant: URIRef) -> str | None:
        candidates: list[tuple[str, Node]] = []
        for predicate in direct:
            candidates += [(join(path, predicate), v) for v in ctx.objects(node, predicate)]
        for moment in ctx.objects(node, instant):
            for predicate in _INSTANT:
                candidates += [
                    (join(join(path, instant), predicate), v)
                    for v in ctx.objects(moment, predicate)
                ]
        for where, value in candidates:
            text = str(value).strip() if isinstance(value, Literal) else ""
            if parse_temporal(text) is not None:
                return text
            ctx.problem(where, value, "is not a date or date-time")
        return None

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        out = []
        for value in values:
            if isinstance(value, Literal):
                ctx.problem(path, value, "is not a period of time")
                continue
            period: dict[str, Any] = {}
            if isinstance(value, URIRef):
                period["iri"] = str(value)
            start = self._bound(ctx, value, path, _START, TIME.hasBeginning)
            end = self._bound(ctx, value, path, _END, TIME.hasEnd)
            if start:
                period["start"] = start
            if end:
                period["end"] = end
            if period:
                out.append(period)
        return sorted(_dedupe(out), key=lambda p: json.dumps(p, sort_keys=True))

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for period in _as_list(value):
            node: Node = URIRef(period["iri"]) if period.get("iri") else BNode()
            ctx.graph.add((subject, predicate, node))
            if set(period) == {"iri"}:
                continue
            ctx.graph.add((node, RDF.type, DCT.PeriodOfTime))
            for key, target in (("start", DCAT.startDate), ("end", DCAT.endDate)):
                if period.get(key):
                    text = period[key]
                    ctx.graph.add((node, target, Literal(text, datatype=temporal_datatype(text))))


class Nested(Kind):
    """A described resource read with the rows of a named structure (``agent``, ...).

    ``{"iri": ...}`` keeps the resource's IRI; a resource that is only referenced is just that.
    ``text_key`` names the row a literal value is read into (a publisher given as a name).
    """

    def __init__(self, structure: str, many: bool = False, text_key: str | None = None) -> None:
        self.structure = structure
        self.many = many
        self.text_key = text_key

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        rows = ctx.structures[self.structure]
        out: list[dict[str, Any]] = []
        for value in values:
            if isinstance(value, Literal):
                if self.text_key is None:
                    ctx.problem(path, value, f"is text, not a resource ({self.structure})")
                    continue
                ctx.problem(path, value, f"is text, not a resource; read as its {self.text_key}")
                row = next(r for r in rows if r[0] == self.text_key)
                out.append({self.text_key: row[2].read(ctx, path, [value])})
                continue
            item: dict[str, Any] = {"iri": str(value)} if isinstance(value, URIRef) else {}
            if ctx.depth < _MAX_DEPTH and ctx.expandable(value):
                ctx.depth += 1
                try:
                    item.update(ctx.read_rows(value, rows, path))
                finally:
                    ctx.depth -= 1
            if item:
                out.append(item)
        out = sorted(_dedupe(out), key=lambda d: json.dumps(d, sort_keys=True, default=str))
        return out if self.many else (out[0] if out else None)

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        rows = ctx.structures[self.structure]
        for item in _as_list(value):
            node: Node = URIRef(item["iri"]) if item.get("iri") else BNode()
            ctx.graph.add((subject, predicate, node))
            default_type = ctx.structure_types.get(self.structure)
            if default_type is not None and not item.get("types") and set(item) - {"iri"}:
                ctx.graph.add((node, RDF.type, default_type))
            ctx.write_rows(node, rows, item)


def _json_literal(value: Literal) -> Any:
    if value.language:
        return {"@value": str(value), "@language": value.language}
    if value.datatype is not None and value.datatype != XSD.string:
        return {"@value": str(value), "@type": compact(str(value.datatype))}
    return {"@value": str(value)} if looks_like_iri(str(value)) else str(value)


class Resources(Kind):
    """Any values as JSON (see the module docstring): IRIs, literals, described resources."""

    def __init__(self, many: bool = True) -> None:
        self.many = many

    def _node(self, ctx: ReadContext, term: Node, trail: tuple[Node, ...]) -> Any:
        if isinstance(term, Literal):
            return _json_literal(term)
        described = ctx.expandable(term) and term not in trail and len(trail) < _MAX_DEPTH
        if isinstance(term, URIRef) and not described:
            return str(term) if looks_like_iri(str(term)) else {"@id": str(term)}
        if not described:
            return None
        out: dict[str, Any] = {}
        if isinstance(term, URIRef):
            out["@id"] = str(term)
        types = [compact(str(t)) for t in ctx.objects(term, RDF.type)]
        if types:
            out["@type"] = types if len(types) > 1 else types[0]
        predicates = sorted({p for p in ctx.graph.predicates(term) if p != RDF.type}, key=str)
        for predicate in predicates:
            items = [
                self._node(ctx, v, (*trail, term)) for v in ctx.objects(term, predicate)
            ]
            items = sorted(
                (i for i in items if i is not None), key=lambda i: json.dumps(i, sort_keys=True)
            )
            if items:
                out[compact(str(predicate))] = items if len(items) > 1 else items[0]
        return out

    def read(self, ctx: ReadContext, path: str, values: list[Node]) -> Any:
        items = [self._node(ctx, v, ()) for v in values]
        items = sorted(
            _dedupe([i for i in items if i is not None]),
            key=lambda i: json.dumps(i, sort_keys=True),
        )
        return items if self.many else (items[0] if items else None)

    def _term(self, ctx: WriteContext, value: Any) -> Node:
        if isinstance(value, str):
            return iri_or_literal(value)
        if isinstance(value, bool):
            return Literal(value)
        if isinstance(value, int | float):
            return Literal(value)
        if "@value" in value:
            datatype = value.get("@type")
            return Literal(
                value["@value"],
                lang=value.get("@language"),
                datatype=URIRef(expand(datatype)) if datatype else None,
            )
        node: Node = URIRef(expand(value["@id"])) if value.get("@id") else BNode()
        for type_ in _as_list(value.get("@type")):
            ctx.graph.add((node, RDF.type, URIRef(expand(type_))))
        for key, items in value.items():
            if key.startswith("@"):
                continue
            predicate = URIRef(expand(key))
            for item in _as_list(items):
                ctx.graph.add((node, predicate, self._term(ctx, item)))
        return node

    def write(self, ctx: WriteContext, subject: Node, predicate: URIRef, value: Any) -> None:
        for item in _as_list(value):
            ctx.graph.add((subject, predicate, self._term(ctx, item)))


# Shared instances, so that tables read as data.
TEXT = Text()
TEXTS = Text(many=True)
STRING = Strings()
STRINGS = Strings(many=True)
IRI = Iri()
IRIS = Iri(many=True)
TERM = Term()
TERMS = Term(many=True)
EMAILS = Emails()
EMAIL_TEXTS = Emails(as_iri=False)
INTEGER = NonNegativeInteger()
DECIMAL = DecimalNumber()
BOOLEAN = Boolean()
DATETIME = DateTimeValue()
TEMPORAL = TemporalText()
DURATION = Duration()
MEDIA_TYPE = MediaType()
PERIODS = Periods()
RESOURCE = Resources(many=False)
RESOURCES = Resources()

__all__ = [
    "BOOLEAN",
    "DATETIME",
    "DECIMAL",
    "DURATION",
    "EMAILS",
    "EMAIL_TEXTS",
    "INTEGER",
    "IRI",
    "IRIS",
    "MEDIA_TYPE",
    "PERIODS",
    "RESOURCE",
    "RESOURCES",
    "STRING",
    "STRINGS",
    "TEMPORAL",
    "TERM",
    "TERMS",
    "TEXT",
    "TEXTS",
    "UNTAGGED",
    "Kind",
    "Nested",
    "ReadContext",
    "Row",
    "WriteContext",
    "looks_like_iri",
    "parse_temporal",
]
