"""DCAT-AP export: per-dataset fragments and page envelopes, streamed in four RDF formats.

A page of the catalogue is never serialised as one graph (rdflib's Turtle serializer is
quadratic on real DCAT pages: every dataset IRI path becomes a namespace candidate). Each
dataset is rendered once, on its own, by Oxigraph into a *fragment* of the target format: the
statements without the document's head and tail (Turtle without ``@prefix`` lines, RDF/XML
without ``<rdf:RDF>``, JSON-LD node objects without the enclosing array, N-Triples as is).
Because every fragment is written with the same prefix table, a page is the format's head, the
page's own statements (catalogue, Hydra view, records), the fragments joined by the format's
separator, and the tail. Fragments are cached by the service (``dataset_exports``), so an
export is mostly a concatenation of stored bytes: memory holds one batch, never the catalogue.

Blank nodes are relabelled per dataset (``_:d<dataset>_<label>``) so that fragments never
share a blank node once concatenated.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from xml.sax.saxutils import quoteattr

import pyoxigraph as ox
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.term import Node

from catalogue.dcat.namespaces import (
    ADMS,
    CV,
    DCAT,
    DCATAP,
    DCT,
    FOAF,
    HYDRA,
    PREFIXES,
    PROV,
    RDF,
    SKOS,
    XSD,
)

#: export format → (media type, Oxigraph format, file extension)
EXPORT_FORMATS: dict[str, tuple[str, ox.RdfFormat, str]] = {
    "turtle": ("text/turtle", ox.RdfFormat.TURTLE, "ttl"),
    "rdfxml": ("application/rdf+xml", ox.RdfFormat.RDF_XML, "rdf"),
    "jsonld": ("application/ld+json", ox.RdfFormat.JSON_LD, "jsonld"),
    "nt": ("application/n-triples", ox.RdfFormat.N_TRIPLES, "nt"),
}
#: names accepted by ``?format=`` (and file extensions) → export format
FORMAT_NAMES: dict[str, str] = {
    "turtle": "turtle", "ttl": "turtle",
    "rdfxml": "rdfxml", "rdf": "rdfxml", "xml": "rdfxml", "rdf+xml": "rdfxml",
    "jsonld": "jsonld", "json-ld": "jsonld", "json": "jsonld",
    "nt": "nt", "ntriples": "nt", "n-triples": "nt",
}
_MEDIA_TYPES: dict[str, str] = {
    "text/turtle": "turtle", "application/x-turtle": "turtle",
    "application/rdf+xml": "rdfxml", "application/xml": "rdfxml", "text/xml": "rdfxml",
    "application/ld+json": "jsonld", "application/json": "jsonld",
    "application/n-triples": "nt", "text/plain": "nt",
}
DEFAULT_FORMAT = "turtle"

CHANGETYPE = "http://purl.org/adms/changetype/"
#: Regulation (EU) 2025/327 on the European Health Data Space
EHDS = "http://data.europa.eu/eli/reg/2025/327/oj"
CREATED = URIRef(CHANGETYPE + "created")
UPDATED = URIRef(CHANGETYPE + "updated")
DELETED = URIRef(CHANGETYPE + "deleted")

_OX_PREFIXES = dict(PREFIXES)

log = logging.getLogger(__name__)


class UnknownFormat(ValueError):
    pass


def choose_format(param: str | None, accept: Iterable[tuple[str, float]] = ()) -> str:
    """The export format from ``?format=`` (wins) or the ``Accept`` header's preferences
    (``(media type, quality)`` pairs, best first); Turtle when neither names one."""
    if param:
        name = FORMAT_NAMES.get(param.strip().lower())
        if name is None:
            raise UnknownFormat(
                f"format {param!r} is not served; use one of {', '.join(sorted(FORMAT_NAMES))}")
        return name
    for media, quality in accept:
        if quality <= 0:
            continue
        name = _MEDIA_TYPES.get(media.lower())
        if name:
            return name
        if media in ("*/*", "text/*", "application/*"):
            return DEFAULT_FORMAT
    return DEFAULT_FORMAT


def media_type(fmt: str) -> str:
    media = EXPORT_FORMATS[fmt][0]
    return f"{media}; charset=utf-8" if not media.endswith("json") else media


# -- terms ----------------------------------------------------------------------------------------


def _label(node: BNode, scope: str) -> str:
    return f"d{scope}_{re.sub(r'[^A-Za-z0-9]', '', str(node))[:40]}"


def to_ox(term: Node, scope: str) -> ox.NamedNode | ox.BlankNode | ox.Literal:
    """An rdflib term as an Oxigraph term; blank nodes labelled within ``scope``."""
    if isinstance(term, URIRef):
        return ox.NamedNode(str(term))
    if isinstance(term, BNode):
        return ox.BlankNode(_label(term, scope))
    if isinstance(term, Literal):
        if term.language:
            return ox.Literal(str(term), language=term.language)
        if term.datatype is not None and term.datatype != XSD.string:
            return ox.Literal(str(term), datatype=ox.NamedNode(str(term.datatype)))
        return ox.Literal(str(term))
    raise TypeError(f"not an RDF term: {term!r}")


def _order(triple: tuple[Node, Node, Node]) -> tuple[int, str, str, str]:
    s, p, o = triple
    return (isinstance(s, BNode), str(s), str(p) if p != RDF.type else "", str(o))


def ox_triples(graph: Iterable[tuple[Node, Node, Node]], scope: str) -> list[ox.Triple]:
    """Oxigraph triples grouped by subject (IRIs first, types first) for readable output.

    A triple with a term that is not a valid IRI (a bare code such as ``IMAGING`` stored where
    the profile expects a vocabulary IRI, by an older import or a JSON client) is left out and
    logged with the dataset's scope, never the value: one bad value must not fail the page
    every harvester of the catalogue reads."""
    out = []
    skipped = 0
    for s, p, o in sorted(graph, key=_order):
        try:
            out.append(ox.Triple(to_ox(s, scope), to_ox(p, scope), to_ox(o, scope)))  # type: ignore[arg-type]
        except ValueError:
            skipped += 1
    if skipped:
        log.warning("export of dataset %s: %d triple(s) with an invalid IRI left out", scope,
                    skipped)
    return out


# -- fragments and envelopes ----------------------------------------------------------------------

_RDFXML_HEAD = re.compile(rb"\A<\?xml[^>]*\?>\s*<rdf:RDF[^>]*>\s*", re.S)
_RDFXML_TAIL = re.compile(rb"\s*</rdf:RDF>\s*\Z")
_NOT_XML = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")


def fragment(triples: list[ox.Triple], fmt: str) -> bytes:
    """``triples`` in ``fmt`` without the document head and tail (see the module notes)."""
    if not triples:
        return b""
    ox_format = EXPORT_FORMATS[fmt][1]
    if fmt == "nt":
        return _serialize(triples, ox_format)
    body = _serialize(triples, ox_format, _OX_PREFIXES)
    if fmt == "turtle":
        lines = body.split(b"\n")
        start = 0
        while start < len(lines) and lines[start].startswith(b"@prefix "):
            start += 1
        return b"\n".join(lines[start:]).strip() + b"\n"
    if fmt == "rdfxml":
        body = _RDFXML_HEAD.sub(b"", body, count=1)
        # XML 1.0 has no way to write these (not even as references); Oxigraph writes them raw
        body = _NOT_XML.sub(b"", body)
        return _RDFXML_TAIL.sub(b"", body, count=1) + b"\n"
    # JSON-LD: Oxigraph writes an expanded array of node objects
    body = body.strip()
    if body.startswith(b"[") and body.endswith(b"]"):
        body = body[1:-1].strip()
    return body


def _serialize(triples: list[ox.Triple], ox_format: ox.RdfFormat,
               prefixes: dict[str, str] | None = None) -> bytes:
    body = ox.serialize(triples, format=ox_format, prefixes=prefixes)
    assert body is not None  # no output file: the bytes are returned
    return body


@dataclass(frozen=True)
class Envelope:
    head: bytes
    separator: bytes
    tail: bytes


@functools.cache
def envelope(fmt: str) -> Envelope:
    if fmt == "turtle":
        head = "".join(f"@prefix {p}: <{ns}> .\n" for p, ns in PREFIXES.items()) + "\n"
        return Envelope(head.encode(), b"\n", b"")
    if fmt == "rdfxml":
        # Oxigraph declares its own namespaces next to ours; take its head verbatim
        sample = _serialize([ox.Triple(ox.NamedNode("urn:x"), ox.NamedNode(str(RDF.type)),
                                       ox.NamedNode(str(DCAT.Dataset)))],
                            ox.RdfFormat.RDF_XML, _OX_PREFIXES)
        match = _RDFXML_HEAD.match(sample)
        assert match is not None
        return Envelope(match.group(0).rstrip() + b"\n", b"", b"</rdf:RDF>\n")
    if fmt == "jsonld":
        return Envelope(b"[\n", b",\n", b"\n]\n")
    return Envelope(b"", b"", b"")


def join(fmt: str, parts: Iterable[bytes]) -> Iterator[bytes]:
    """One document: the head, the non-empty ``parts`` with separators, the tail."""
    env = envelope(fmt)
    yield env.head
    first = True
    for part in parts:
        if not part:
            continue
        if not first and env.separator:
            yield env.separator
        first = False
        yield part
    if env.tail:
        yield env.tail


def opening(fmt: str, first: bytes) -> bytes:
    """A document's start up to and including its first part (which must not be empty). With
    :func:`continued` parts after it and :func:`closing`, the same bytes as :func:`join` of
    all the parts. A page's first part is the catalogue's own statements (totals, links),
    which change with any write to the catalogue; the parts after it (listings and
    descriptions) only when their datasets change."""
    if not first:
        raise ValueError("a document's first part must not be empty")
    return envelope(fmt).head + first


def continued(fmt: str, parts: Iterable[bytes]) -> list[bytes]:
    """Parts after a document's first one: each non-empty part after its separator."""
    separator = envelope(fmt).separator
    out = []
    for part in parts:
        if part:
            if separator:
                out.append(separator)
            out.append(part)
    return out


def closing(fmt: str) -> bytes:
    return envelope(fmt).tail


# -- the catalogue's own statements ---------------------------------------------------------------


def xsd_datetime(value: datetime) -> Literal:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC).replace(microsecond=0)
    return Literal(value.isoformat().replace("+00:00", "Z"), datatype=XSD.dateTime,
                   normalize=False)


@dataclass(frozen=True)
class RecordFacts:
    """What a ``dcat:CatalogRecord`` says about one dataset."""

    record: str
    dataset: str
    issued: datetime
    modified: datetime
    deleted: bool = False
    created: bool = False
    source_url: str | None = None
    harvested_at: datetime | None = None


def record_graph(facts: RecordFacts) -> Graph:
    graph = Graph(bind_namespaces="none")
    rec, ds = URIRef(facts.record), URIRef(facts.dataset)
    status = DELETED if facts.deleted else (CREATED if facts.created else UPDATED)
    graph.add((rec, RDF.type, DCAT.CatalogRecord))
    graph.add((rec, FOAF.primaryTopic, ds))
    graph.add((rec, DCT.issued, xsd_datetime(facts.issued)))
    graph.add((rec, DCT.modified, xsd_datetime(facts.modified)))
    graph.add((rec, ADMS.status, status))
    graph.add((status, RDF.type, SKOS.Concept))
    graph.add((status, SKOS.prefLabel, Literal(str(status).rsplit("/", 1)[-1], lang="en")))
    if facts.deleted:
        # the dataset is gone: typed as a resource only, so no harvester reads it as a dataset
        graph.add((ds, RDF.type, DCAT.Resource))
    if facts.source_url:
        source = URIRef(facts.record + "/source")
        graph.add((rec, DCT.source, source))
        graph.add((source, RDF.type, DCAT.CatalogRecord))
        graph.add((source, FOAF.primaryTopic, ds))
        graph.add((source, DCT.modified, xsd_datetime(facts.harvested_at or facts.modified)))
        activity = URIRef(facts.record + "/harvest")
        graph.add((source, PROV.wasGeneratedBy, activity))
        graph.add((activity, RDF.type, PROV.Activity))
        graph.add((activity, PROV.used, URIRef(facts.source_url)))
        if facts.harvested_at is not None:
            graph.add((activity, PROV.endedAtTime, xsd_datetime(facts.harvested_at)))
    return graph


@dataclass(frozen=True)
class CatalogFacts:
    iri: str
    title: str
    description: str
    publisher_name: str
    homepage: str
    contact_email: str = ""
    legislation: tuple[str, ...] = (EHDS,)
    language: str = "en"


def catalog_graph(facts: CatalogFacts, datasets: Iterable[str] = (),
                  records: Iterable[str] = (), modified: datetime | None = None) -> Graph:
    graph = Graph(bind_namespaces="none")
    cat = URIRef(facts.iri)
    publisher = URIRef(facts.iri + "#publisher")
    graph.add((cat, RDF.type, DCAT.Catalog))
    graph.add((cat, DCT.title, Literal(facts.title, lang=facts.language)))
    graph.add((cat, DCT.description, Literal(facts.description, lang=facts.language)))
    graph.add((cat, DCT.publisher, publisher))
    graph.add((publisher, RDF.type, FOAF.Agent))
    graph.add((publisher, FOAF.name, Literal(facts.publisher_name)))
    if facts.contact_email:
        contact = URIRef(facts.iri + "#contact")
        graph.add((publisher, CV.contactPoint, contact))
        graph.add((contact, RDF.type, CV.ContactPoint))
        graph.add((contact, CV.email, Literal(facts.contact_email)))
    for law in facts.legislation:
        # not typed here: datasets on the page cite the same IRI, and a harvester cutting
        # their descriptions would take the page's statements about it along
        graph.add((cat, DCATAP.applicableLegislation, URIRef(law)))
    graph.add((cat, FOAF.homepage, URIRef(facts.homepage)))
    graph.add((URIRef(facts.homepage), RDF.type, FOAF.Document))
    if modified is not None:
        graph.add((cat, DCT.modified, xsd_datetime(modified)))
    for ds in datasets:
        graph.add((cat, DCAT.dataset, URIRef(ds)))
    for rec in records:
        graph.add((cat, DCAT.record, URIRef(rec)))
    return graph


@dataclass(frozen=True)
class PageLinks:
    collection: str
    page: str
    total: int
    first: str
    next: str | None
    last: str | None


def hydra_graph(links: PageLinks) -> Graph:
    graph = Graph(bind_namespaces="none")
    coll, page = URIRef(links.collection), URIRef(links.page)
    graph.add((coll, RDF.type, HYDRA.Collection))
    graph.add((coll, HYDRA.totalItems, Literal(links.total, datatype=XSD.integer)))
    graph.add((coll, HYDRA.view, page))
    graph.add((page, RDF.type, HYDRA.PartialCollectionView))
    graph.add((page, HYDRA.first, URIRef(links.first)))
    if links.next:
        graph.add((page, HYDRA.next, URIRef(links.next)))
    if links.last:
        graph.add((page, HYDRA.last, URIRef(links.last)))
    return graph


def links(catalog: str, datasets: Iterable[str], records: Iterable[str], fmt: str) -> bytes:
    """The catalogue's ``dcat:dataset`` and ``dcat:record`` statements as a fragment, made
    straight as Oxigraph terms (a page has thousands of them)."""
    cat = ox.NamedNode(catalog)
    dataset, rec = ox.NamedNode(str(DCAT.dataset)), ox.NamedNode(str(DCAT.record))
    triples = [ox.Triple(cat, dataset, ox.NamedNode(iri)) for iri in datasets]
    triples += [ox.Triple(cat, rec, ox.NamedNode(iri)) for iri in records]
    return fragment(triples, fmt)


_DCAT_DATASET = str(DCAT.dataset)
_DCAT_RECORD = str(DCAT.record)
_DCAT_NS = str(DCAT)


def listed(fmt: str, catalog: str, dataset: str | None, record: str) -> bytes:
    """The catalogue's ``dcat:dataset`` (when ``dataset`` is listed live) and ``dcat:record``
    statements about one dataset, as a fragment of ``fmt``: the same statements
    :func:`links` makes, written by template (a page has a thousand datasets, and one
    serializer call each would cost more than the rest of the page). IRIs are checked by
    Oxigraph and written in its N-Triples form, which Turtle reads too."""
    rec = ox.NamedNode(record)
    live = ox.NamedNode(dataset) if dataset is not None else None
    t = _listing_templates(fmt, catalog)
    if fmt in ("nt", "turtle"):
        text = f"{t[0]}{live} .\n" if live is not None else ""
        return f"{text}{t[1]}{rec} .\n".encode()
    if fmt == "jsonld":
        text = f"{t[0]}{json.dumps(live.value, ensure_ascii=False)}}}]" \
            if live is not None else t[2]
        return f"{text}{t[1]}{json.dumps(rec.value, ensure_ascii=False)}}}]}}".encode()
    text = f"{t[0]}{quoteattr(live.value)}/>" if live is not None else t[2]
    return f"{text}{t[1]}{quoteattr(rec.value)}/></rdf:Description>\n".encode()


@functools.lru_cache(maxsize=16)
def _listing_templates(fmt: str, catalog: str) -> tuple[str, str, str]:
    """(up to the dataset IRI, up to the record IRI, the start without a dataset)."""
    cat = ox.NamedNode(catalog)
    if fmt in ("nt", "turtle"):
        return f"{cat} <{_DCAT_DATASET}> ", f"{cat} <{_DCAT_RECORD}> ", ""
    if fmt == "jsonld":
        start = "{" + f'"@id": {json.dumps(cat.value, ensure_ascii=False)}'
        return (f'{start}, "{_DCAT_DATASET}": [{{"@id": ', f', "{_DCAT_RECORD}": [{{"@id": ',
                start)
    if fmt == "rdfxml":
        start = f"<rdf:Description rdf:about={quoteattr(cat.value)}>"
        return (f'{start}<dataset xmlns="{_DCAT_NS}" rdf:resource=',
                f'<record xmlns="{_DCAT_NS}" rdf:resource=', start)
    raise UnknownFormat(fmt)


def render(graph: Iterable[tuple[Node, Node, Node]], fmt: str, scope: str = "c") -> bytes:
    return fragment(ox_triples(graph, scope), fmt)


def document(fmt: str, graphs: Iterable[bytes]) -> bytes:
    return b"".join(join(fmt, graphs))
