"""OAI-PMH 2.0 ``ListRecords`` for the DCAT harvester: requests, safe reading, records → RDF.

A DCAT source whose URL asks for ``verb=ListRecords`` is harvested through this module instead
of Hydra pages. Each OAI identifier is the dataset IRI; a record's ``<metadata>`` holds one
``rdf:RDF`` element with the dataset's DCAT-AP description. One response (all its records, their
descriptions merged into one graph) is one page of the harvest, fed to the same cut, validation
and upsert as a Hydra page. Records whose header says ``status="deleted"`` are announced
deletions. Resumption tokens are followed with ``verb`` and the token only, as the protocol
requires; an incremental run asks ``from=`` the previous run's start (UTC, seconds).

Responses are untrusted XML: a document declaring a DOCTYPE or an entity is refused before and
while parsing (expat never sees a DTD, so no entity is ever expanded or loaded).
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rdflib import Graph

from catalogue.dcat.formats import RdfError, parse_rdf
from catalogue.harvest.base import RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch, redact_url

__all__ = [
    "ACCEPT",
    "OAI",
    "OaiPage",
    "OaiRecord",
    "OaiRefused",
    "Response",
    "first_request",
    "is_list_records",
    "list_records",
    "parse_response",
    "records_page",
    "resume_request",
]

OAI = "http://www.openarchives.org/OAI/2.0/"
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
ACCEPT = "text/xml, application/xml;q=0.9"
#: the one OAI-PMH error that means "an empty list", on the first request only
NO_RECORDS = "noRecordsMatch"
_DECLARATION = re.compile(rb"<!\s*(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def _q(name: str) -> str:
    return f"{{{OAI}}}{name}"


class OaiRefused(Exception):
    """The response is not a usable OAI-PMH document (not XML, a DTD, another root)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# -- requests -------------------------------------------------------------------------------------


def is_list_records(url: str) -> bool:
    """True if ``url`` is an OAI-PMH ``ListRecords`` request (http or https)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return False
    return ("verb", "ListRecords") in parse_qsl(parts.query)


def _datestamp(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def first_request(url: str, since: datetime | None) -> str:
    """The first request of a list: the source URL, with ``from=`` when ``since`` is given."""
    if since is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "from"]
    query.append(("from", _datestamp(since)))
    return urlunsplit(parts._replace(query=urlencode(query), fragment=""))


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def resume_request(url: str, token: str) -> str:
    """The request that continues a list: the base URL, ``verb`` and the token, nothing else."""
    return _endpoint(url) + "?" + urlencode([("verb", "ListRecords"), ("resumptionToken", token)])


# -- responses ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OaiRecord:
    """One ``<record>``: its header and, for live records, the ``rdf:RDF`` element as bytes."""

    identifier: str
    datestamp: str | None = None
    deleted: bool = False
    metadata: bytes | None = None
    problem: str | None = None  # why a live record's metadata cannot be used


@dataclass
class Response:
    records: list[OaiRecord] = field(default_factory=list)
    token: str | None = None  # None: the list is complete
    complete_list_size: int | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)  # (code, text)


class _NoDoctype(ET.TreeBuilder):
    """Tree builder that stops the parse at a DOCTYPE: whatever the document's encoding, expat
    reports the declaration before it reads the internal subset."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise OaiRefused(
            "refused OAI-PMH response: it declares a DOCTYPE; DTDs and entities are never processed"
        )


def _refuse_declarations(content: bytes) -> None:
    head = content
    encoding = (
        "utf-16"
        if content.startswith((b"\xff\xfe", b"\xfe\xff"))
        else "utf-16-le"
        if content.startswith(b"<\x00")
        else "utf-16-be"
        if content.startswith(b"\x00<")
        else None
    )
    if encoding:  # a byte search for ASCII "<!DOCTYPE" would miss it
        head = content.decode(encoding, errors="replace").encode("utf-8")
    found = _DECLARATION.search(head)
    if found:
        what = "a DOCTYPE" if b"DOCTYPE" in found.group(0).upper() else "an ENTITY"
        raise OaiRefused(
            f"refused OAI-PMH response: it declares {what}; DTDs and entities are never processed"
        )


def _xml(content: bytes) -> ET.Element:
    _refuse_declarations(content)
    parser = ET.XMLParser(target=_NoDoctype())  # noqa: S314 - no DTD can reach expat
    try:
        parser.feed(content)
        root: ET.Element = parser.close()
    except ET.ParseError as exc:
        raise OaiRefused(f"not an OAI-PMH response: the XML is not well-formed ({exc})") from None
    return root


def _record(element: ET.Element) -> OaiRecord:
    header = element.find(_q("header"))
    if header is None:
        return OaiRecord("", problem="the record has no header")
    identifier = (header.findtext(_q("identifier")) or "").strip()
    datestamp = (header.findtext(_q("datestamp")) or "").strip() or None
    if not identifier:
        return OaiRecord("", datestamp, problem="the record header has no identifier")
    if header.get("status") == "deleted":
        return OaiRecord(identifier, datestamp, deleted=True)
    metadata = element.find(_q("metadata"))
    content = list(metadata) if metadata is not None else []
    if not content:
        return OaiRecord(identifier, datestamp, problem="the record has no metadata")
    if content[0].tag != f"{{{_RDF}}}RDF":
        return OaiRecord(
            identifier,
            datestamp,
            problem=(
                f"the record's metadata is {content[0].tag.rpartition('}')[2]!r}, not an rdf:RDF "
                "document (use a metadataPrefix that serves DCAT-AP as RDF/XML)"
            ),
        )
    body = content[0]
    body.tail = None
    # ElementTree declares every namespace the element uses: a standalone RDF/XML document
    return OaiRecord(identifier, datestamp, metadata=ET.tostring(body, encoding="utf-8"))


def parse_response(content: bytes) -> Response:
    """Read one OAI-PMH response. Raises :class:`OaiRefused` if it is not one (or declares a
    DTD); OAI-PMH ``<error>`` elements are returned in :attr:`Response.errors`."""
    root = _xml(content)
    if root.tag != _q("OAI-PMH"):
        raise OaiRefused(
            f"not an OAI-PMH response: the root element is {root.tag.rpartition('}')[2][:60]!r}"
        )
    errors = [
        (e.get("code", "").strip() or "unknown", " ".join((e.text or "").split())[:300])
        for e in root.findall(_q("error"))
    ]
    if errors:
        return Response(errors=errors)
    listing = root.find(_q("ListRecords"))
    if listing is None:
        raise OaiRefused("not an OAI-PMH ListRecords response: no ListRecords element")
    out = Response(records=[_record(r) for r in listing.findall(_q("record"))])
    resumption = listing.find(_q("resumptionToken"))
    if resumption is not None:
        out.token = (resumption.text or "").strip() or None
        size = resumption.get("completeListSize", "")
        out.complete_list_size = int(size) if size.isdigit() else None
    return out


# -- records → a page -----------------------------------------------------------------------------


@dataclass
class OaiPage:
    """One response as a harvest page."""

    url: str
    graph: Graph  # the live records' descriptions, merged
    live: list[str] = field(default_factory=list)  # identifiers (IRIs) of live records
    deleted: list[str] = field(default_factory=list)  # identifiers of deleted records
    failures: list[dict[str, Any]] = field(default_factory=list)  # record, message


def records_page(url: str, records: list[OaiRecord], base: str | None = None) -> OaiPage:
    """Parse each live record's metadata and merge them; a record that is not valid RDF/XML
    is a failure of that record only. Blank nodes never collide: every parse makes its own."""
    page = OaiPage(url, Graph())
    base = base or _endpoint(url)
    for record in records:
        if record.deleted:
            page.deleted.append(record.identifier)
            continue
        if record.identifier:
            page.live.append(record.identifier)
        if record.problem or record.metadata is None:
            page.failures.append(
                {
                    "record": record.identifier or None,
                    "message": record.problem or "the record has no metadata",
                }
            )
            continue
        try:
            graph = parse_rdf(record.metadata, content_type="application/rdf+xml", base=base)
        except RdfError as exc:
            page.failures.append(
                {
                    "record": record.identifier,
                    "message": f"metadata is not valid RDF/XML: {exc.message}",
                }
            )
            continue
        except (SyntaxError, ValueError) as exc:
            page.failures.append(
                {
                    "record": record.identifier,
                    "message": f"metadata is not valid RDF/XML: {str(exc)[:300]}",
                }
            )
            continue
        add = page.graph.add
        for triple in graph:
            add(triple)
    return page


# -- the list -------------------------------------------------------------------------------------


def list_records(
    ctx: RunContext, policy: FetchPolicy, *, max_pages: int, max_total_bytes: int
) -> Iterator[OaiPage]:
    """The responses of ``ctx.url``'s list, one page each, following resumption tokens.

    Raises :class:`SourceUnreadable` when the first request fails (``noRecordsMatch`` there is
    an empty list). A later failure, a repeated token or a limit ends the list with an error
    and ``ctx.complete = False``.
    """
    url: str | None = first_request(ctx.url, ctx.modified_since)
    tokens: set[str] = set()
    requests = 0
    total = 0
    while url is not None:
        first = requests == 0
        if requests >= max_pages:
            _stop(ctx, first, f"more than {max_pages} pages; stopped", url)
            return
        requests += 1
        started = time.perf_counter()
        try:
            content = fetch(url, policy, accept=ACCEPT).content
        except FetchError as exc:
            _stop(
                ctx,
                first,
                exc.message if first else f"page could not be fetched: {exc.message}",
                url,
            )
            return
        ctx.timed("fetch", time.perf_counter() - started)
        total += len(content)
        if total > max_total_bytes:
            _stop(ctx, first, "the source exceeds the total size limit; stopped", url)
            return
        started = time.perf_counter()
        try:
            response = parse_response(content)
        except OaiRefused as exc:
            _stop(ctx, first, exc.message, url)
            return
        if response.errors:
            if first and {code for code, _text in response.errors} == {NO_RECORDS}:
                return  # an empty list, complete
            _stop(
                ctx,
                first,
                "; ".join(
                    f"OAI-PMH error {code}" + (f": {text}" if text else "")
                    for code, text in response.errors
                ),
                url,
            )
            return
        page = records_page(url, response.records, base=_endpoint(ctx.url))
        ctx.timed("parse", time.perf_counter() - started)
        yield page
        token = response.token
        if token is None:
            return
        if token in tokens:
            ctx.complete = False
            ctx.error(
                "paging loop: the resumption token was already used in this run; stopped",
                location=redact_url(url),
            )
            return
        tokens.add(token)
        url = resume_request(ctx.url, token)


def _stop(ctx: RunContext, first: bool, message: str, url: str) -> None:
    """A request that failed: the first one fails the run, a later one ends the list."""
    if first:
        raise SourceUnreadable(message)
    ctx.complete = False
    ctx.error(message, location=redact_url(url))
