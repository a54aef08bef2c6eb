"""OAI-PMH 2.0 at ``/oai`` (GET, or POST with an ``application/x-www-form-urlencoded`` body),
and the XML Schemas its responses refer to at ``/oai/schemas/{name}``.

Public, like the DCAT-AP export. Protocol errors are answered as the protocol says: HTTP 200 and
an ``<error>`` element (see :mod:`catalogue.services.oai`).
"""

from __future__ import annotations

from flask import Blueprint, Response, request, send_file

from catalogue.api.routing import op, runtime
from catalogue.errors import NotFound
from catalogue.resources import resource_dir
from catalogue.services.oai import OaiProvider

bp = Blueprint("oai", __name__, url_prefix="/oai")

CONTENT_TYPE = "text/xml; charset=utf-8"
_ARGUMENTS = (
    ("verb", "string", "Identify, ListMetadataFormats, ListSets, GetRecord, ListIdentifiers "
                       "or ListRecords"),
    ("identifier", "string", "A record's identifier: the dataset IRI (GetRecord, "
                             "ListMetadataFormats)"),
    ("metadataPrefix", "string", "oai_dc or dcat_ap (DCAT-AP as RDF/XML)"),
    ("from", "string", "Lists: changed on or after (YYYY-MM-DD or YYYY-MM-DDThh:mm:ssZ)"),
    ("until", "string", "Lists: changed on or before (same granularity as from)"),
    ("set", "string", "Lists: one organisation's records (setSpec from ListSets)"),
    ("resumptionToken", "string", "Lists: the next page (exclusive argument)"),
)


def provider() -> OaiProvider:
    rt = runtime()
    return OaiProvider(rt.database, rt.export, repository_name=rt.config.catalog_title,
                       admin_email=rt.config.catalog_admin_email,
                       base_url=rt.config.public_base_url, secret=rt.secret_key)


def _answer(arguments: list[tuple[str, str]]) -> Response:
    response = Response(provider().respond(arguments), content_type=CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-cache"
    return response


@op(
    bp,
    "GET",
    "",
    "OAI-PMH 2.0: the published datasets (and the withdrawn ones, as deleted records) for "
    "harvesters, in oai_dc or dcat_ap; one set per organisation. Protocol errors are XML "
    "<error> elements with HTTP 200",
    tag="oai",
    query=_ARGUMENTS,
)
def oai_get() -> Response:
    return _answer(list(request.args.items(multi=True)))


@op(
    bp,
    "POST",
    "",
    "OAI-PMH 2.0 with the arguments in an application/x-www-form-urlencoded body (same "
    "arguments and answers as GET)",
    tag="oai",
)
def oai_post() -> Response:
    return _answer(list(request.form.items(multi=True)))


@op(
    bp,
    "GET",
    "/schemas/{name}",
    "The XML Schemas OAI-PMH responses refer to (rdf-lax.xsd for dcat_ap metadata)",
    tag="oai",
    errors=(404,),
)
def schema(name: str) -> Response:
    folder = resource_dir("ontologies") / "xsd"
    served = {path.name for path in folder.glob("*.xsd")}
    if name not in served:
        raise NotFound(f"no schema {name!r}")
    return send_file(folder / name, mimetype="application/xml", max_age=86400)
