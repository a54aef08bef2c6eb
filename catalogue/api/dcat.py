"""The catalogue as DCAT-AP for harvesters: ``/dcat/catalog`` (Hydra pages, incremental with
``?modified_since=``), ``/dcat/datasets/{id}`` and ``/dcat/records/{id}``.

Formats by ``?format=`` or ``Accept``: Turtle (default), RDF/XML, JSON-LD, N-Triples. Every
answer has an ETag and a Last-Modified and honours ``If-None-Match``/``If-Modified-Since``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import IO, cast
from urllib.parse import urlencode

from flask import Blueprint, Response, request
from werkzeug.wsgi import wrap_file

from catalogue.api.routing import int_arg, op, runtime
from catalogue.caching import Joined
from catalogue.dcat.export import UnknownFormat, choose_format, media_type
from catalogue.errors import ValidationError
from catalogue.services.export import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, parse_instant
from catalogue.store.exports import Selection

bp = Blueprint("dcat", __name__, url_prefix="/dcat")

_FORMAT_QUERY = ("format", "string", "turtle|ttl, rdfxml|rdf|xml, jsonld|json-ld, nt|ntriples "
                 "(default: from Accept, else Turtle)")


def export_format() -> str:
    try:
        return choose_format(request.args.get("format"), list(request.accept_mimetypes))
    except UnknownFormat as exc:
        raise ValidationError(str(exc)) from None


def _http_date(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return format_datetime(value.astimezone(UTC), usegmt=True)


def not_modified(etag: str, last_modified: datetime | None) -> bool:
    """Whether the client's validators match (RFC 9110: If-None-Match wins)."""
    if request.if_none_match:
        return request.if_none_match.contains_weak(etag.strip('"'))
    since = request.headers.get("If-Modified-Since")
    if since and last_modified is not None:
        try:
            client = parsedate_to_datetime(since)
        except (TypeError, ValueError):
            return False
        return last_modified.replace(microsecond=0) <= client
    return False


def _respond(body: bytes | Callable[[], bytes | Joined], fmt: str, etag: str,
             last_modified: datetime | None, status: int = 200,
             discard: Callable[[], None] | None = None) -> Response:
    """``body`` may be a callable: it is called only when the answer is not a 304 (then
    ``discard`` is). A body partly stored (:class:`Joined`) is handed to the server as a file
    (``wsgi.file_wrapper``): it is sent from the file, not copied into its buffers first."""
    if status == 200 and not_modified(etag, last_modified):
        if discard is not None:
            discard()
        response = Response(status=304)
    else:
        content = body() if callable(body) else body
        if isinstance(content, Joined):
            stream = cast(IO[bytes], content)  # read, seek and tell: all a file wrapper uses
            response = Response(wrap_file(request.environ, stream, 2**20), status=status,
                                mimetype=None, content_type=media_type(fmt),
                                direct_passthrough=True)
            response.content_length = content.size
        else:
            response = Response(content, status=status, mimetype=None,
                                content_type=media_type(fmt))
    response.headers["ETag"] = etag
    if last_modified is not None:
        response.headers["Last-Modified"] = _http_date(last_modified)
    response.headers["Vary"] = "Accept"
    response.headers["Cache-Control"] = "no-cache"
    return response


@op(
    bp,
    "GET",
    "/catalog",
    "The catalogue as DCAT-AP 3 (with HealthDCAT-AP and EUCAIM properties): one Hydra page of "
    "published datasets with their catalogue records; with modified_since, the changed ones "
    "and the withdrawn ones (records with adms:status changetype/deleted)",
    tag="dcat",
    query=(
        _FORMAT_QUERY,
        ("page_size", "integer", f"Datasets per page (1-{MAX_PAGE_SIZE}, "
                                 f"default {DEFAULT_PAGE_SIZE})"),
        ("cursor", "string", "Where the page starts: given in hydra:next (keyset, stable while "
                             "the catalogue changes)"),
        ("modified_since", "string", "ISO 8601: only datasets changed after it, withdrawn "
                                     "ones announced as deleted"),
        ("organisation", "string", "Only this provider's datasets"),
    ),
    errors=(400,),
)
def catalog() -> Response:
    fmt = export_format()
    size = int_arg("page_size", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    since = parse_instant(request.args.get("modified_since"), "modified_since")
    organisation = request.args.get("organisation") or None
    cursor = request.args.get("cursor") or None
    service = runtime().export
    kept = [(k, request.args[k]) for k in ("format", "page_size", "modified_since",
                                           "organisation") if request.args.get(k)]

    def url(after: str | None) -> str:
        query = kept + ([("cursor", after)] if after else [])
        return service.catalog_iri + ("?" + urlencode(query) if query else "")

    page = service.page(fmt, Selection(since=since, organisation=organisation), cursor, size,
                        url)
    response = _respond(page.body, fmt, page.etag, page.last_modified, discard=page.discard)
    links = [f'<{url(None)}>; rel="first"']
    if page.next_cursor:
        links.append(f'<{url(page.next_cursor)}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    response.headers["X-Total-Count"] = str(page.total)
    return response


@op(
    bp,
    "GET",
    "/datasets/{dataset_id}",
    "One published dataset as DCAT-AP, with its catalogue record (410 once withdrawn)",
    tag="dcat",
    query=(_FORMAT_QUERY,),
    errors=(400, 404, 410),
)
def dataset(dataset_id: str) -> Response:
    fmt = export_format()
    service = runtime().export
    row, body = service.dataset(dataset_id, fmt)
    etag, modified = service.validators(row, fmt)
    return _respond(body, fmt, etag, modified)


@op(
    bp,
    "GET",
    "/records/{dataset_id}",
    "The catalogue record of a dataset (issued, modified, change type, harvest provenance); "
    "withdrawn datasets keep theirs, marked deleted",
    tag="dcat",
    query=(_FORMAT_QUERY,),
    errors=(400, 404),
)
def record(dataset_id: str) -> Response:
    fmt = export_format()
    service = runtime().export
    row, body = service.record(dataset_id, fmt)
    etag, modified = service.validators(row, fmt + "-record")
    return _respond(body, fmt, etag, modified)
