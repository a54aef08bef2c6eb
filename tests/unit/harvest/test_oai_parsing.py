"""OAI-PMH responses and DCAT deletion announcements as the harvester reads them: requests,
records, tokens, protocol errors, refused DTDs, and records → one RDF graph."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest
from rdflib import BNode, Literal, URIRef
from rdflib.namespace import XSD

from catalogue.dcat import fastcut
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.namespaces import DCT, VCARD
from catalogue.dcat.profiles import get_profile
from catalogue.harvest import oai
from catalogue.harvest.dcat import deleted_topics, extract_page

RDF_NS = 'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"'
NS = (
    f'{RDF_NS} xmlns:dcat="http://www.w3.org/ns/dcat#" xmlns:dct="http://purl.org/dc/terms/" '
    'xmlns:vcard="http://www.w3.org/2006/vcard/ns#"'
)
DS = "https://provider.example/datasets/"


def _record(name: str, body: str | None = None, *, deleted: bool = False) -> str:
    status = ' status="deleted"' if deleted else ""
    header = (
        f"<header{status}><identifier>{DS}{name}</identifier>"
        "<datestamp>2026-11-28T10:00:00Z</datestamp><setSpec>org:a</setSpec></header>"
    )
    if deleted:
        return f"<record>{header}</record>"
    if body is None:
        body = (
            f'<rdf:RDF {NS}><dcat:Dataset rdf:about="{DS}{name}">'
            f'<dct:title xml:lang="en">Dataset {name}</dct:title>'
            '<dct:issued rdf:datatype="http://www.w3.org/2001/XMLSchema#date">2024-01-02'
            '</dct:issued><dcat:contactPoint><vcard:Kind rdf:nodeID="b0">'
            f"<vcard:fn>Desk {name}</vcard:fn></vcard:Kind></dcat:contactPoint>"
            "</dcat:Dataset></rdf:RDF>"
        )
    return f"<record>{header}<metadata>{body}</metadata></record>"


def _response(inner: str, *, root_ns: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" {root_ns}>'
        "<responseDate>2026-11-28T10:00:00Z</responseDate>"
        '<request verb="ListRecords" metadataPrefix="dcat_ap">https://node.example/oai</request>'
        f"{inner}</OAI-PMH>"
    ).encode()


def _list(*records: str, token: str | None = None, size: int | None = None) -> bytes:
    rt = ""
    if token is not None:
        attrs = f' completeListSize="{size}" cursor="0"' if size is not None else ""
        rt = f"<resumptionToken{attrs}>{token}</resumptionToken>"
    return _response(f"<ListRecords>{''.join(records)}{rt}</ListRecords>")


# -- requests -------------------------------------------------------------------------------------


def test_only_list_records_requests_are_oai() -> None:
    assert oai.is_list_records("https://n.example/oai?verb=ListRecords&metadataPrefix=dcat_ap")
    assert oai.is_list_records("http://n.example/oai?metadataPrefix=x&verb=ListRecords&set=a")
    assert not oai.is_list_records("https://n.example/oai?verb=Identify")
    assert not oai.is_list_records("https://n.example/dcat/catalog?page=2")
    assert not oai.is_list_records("file:///tmp/oai?verb=ListRecords")


def test_incremental_first_request_asks_from_in_utc_seconds() -> None:
    url = "https://n.example/oai?verb=ListRecords&metadataPrefix=dcat_ap&set=org%3Aa&from=2000"
    assert oai.first_request(url, None) == url
    since = datetime(2026, 11, 28, 12, 30, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    query = dict(parse_qsl(urlsplit(oai.first_request(url, since)).query))
    assert query == {
        "verb": "ListRecords",
        "metadataPrefix": "dcat_ap",
        "set": "org:a",
        "from": "2026-11-28T10:30:05Z",
    }
    naive = dict(parse_qsl(urlsplit(oai.first_request(url, datetime(2026, 1, 2, 3, 4, 5))).query))
    assert naive["from"] == "2026-01-02T03:04:05Z"  # a naive time is taken as UTC


def test_resumption_requests_carry_only_verb_and_token() -> None:
    url = "https://n.example:8443/oai?verb=ListRecords&metadataPrefix=dcat_ap&set=a&from=x"
    nxt = oai.resume_request(url, "c=100&s=a b/é")
    parts = urlsplit(nxt)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "n.example:8443", "/oai")
    assert parse_qsl(parts.query) == [("verb", "ListRecords"), ("resumptionToken", "c=100&s=a b/é")]


# -- responses ------------------------------------------------------------------------------------


def test_records_deleted_headers_and_token_are_read() -> None:
    response = oai.parse_response(
        _list(_record("a"), _record("b", deleted=True), token="tok-1", size=42)
    )
    live, gone = response.records
    assert (live.identifier, live.deleted, live.datestamp) == (
        DS + "a",
        False,
        "2026-11-28T10:00:00Z",
    )
    assert live.metadata is not None and live.metadata.startswith(b"<rdf:RDF")
    assert (gone.identifier, gone.deleted, gone.metadata) == (DS + "b", True, None)
    assert response.token == "tok-1" and response.complete_list_size == 42
    assert response.errors == []


@pytest.mark.parametrize(
    "token",
    [
        "",
        '<resumptionToken completeListSize="2" cursor="1"/>',
        "<resumptionToken>   </resumptionToken>",
    ],
)
def test_an_empty_or_missing_token_ends_the_list(token: str) -> None:
    body = _response(f"<ListRecords>{_record('a')}{token}</ListRecords>")
    assert oai.parse_response(body).token is None


def test_protocol_errors_are_returned_with_code_and_text() -> None:
    body = _response('<error code="badResumptionToken">The token\n  expired</error>')
    assert oai.parse_response(body).errors == [("badResumptionToken", "The token expired")]
    assert oai.parse_response(_response('<error code="noRecordsMatch"/>')).errors == [
        ("noRecordsMatch", "")
    ]


@pytest.mark.parametrize(
    "body",
    [
        # entity expansion ("billion laughs")
        b'<?xml version="1.0"?><!DOCTYPE OAI-PMH [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">&b;</OAI-PMH>',
        # external entity (file disclosure, SSRF)
        b'<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">&x;</OAI-PMH>',
        # external DTD
        b'<!DOCTYPE OAI-PMH SYSTEM "http://169.254.169.254/dtd">'
        b'<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/"/>',
        # the same in UTF-16, where a byte search for ASCII "<!DOCTYPE" finds nothing
        '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x "y">]>'
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/">&x;</OAI-PMH>'.encode("utf-16"),
        '<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode("utf-16-be"),  # no BOM
    ],
    ids=["entity-expansion", "external-entity", "external-dtd", "utf-16", "utf-16-be"],
)
def test_documents_declaring_a_dtd_or_entities_are_refused(body: bytes) -> None:
    with pytest.raises(oai.OaiRefused, match="DOCTYPE|ENTITY"):
        oai.parse_response(body)


def test_the_parser_itself_stops_at_a_doctype(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: a DOCTYPE that the up-front check missed still never reaches entity
    processing: the parse stops at the declaration."""
    monkeypatch.setattr(oai, "_refuse_declarations", lambda content: None)
    for body in (
        b'<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>',
        '<!DOCTYPE r [<!ENTITY x "y">]><r>&x;</r>'.encode("utf-16-le"),
    ):
        with pytest.raises(oai.OaiRefused, match="declares a DOCTYPE"):
            oai.parse_response(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>Service unavailable</body></html>", "root element is 'html'"),
        (b"<OAI-PMH xmlns='http://www.openarchives.org/OAI/2.0/'><ListRecords>", "not well-formed"),
        (b"", "not well-formed"),
        (_response("<GetRecord/>"), "no ListRecords"),
    ],
)
def test_other_documents_are_not_oai_responses(body: bytes, message: str) -> None:
    with pytest.raises(oai.OaiRefused, match=message):
        oai.parse_response(body)


def test_metadata_that_is_not_rdf_xml_is_a_problem_of_that_record() -> None:
    dc = '<oai_dc:dc xmlns:oai_dc="http://www.openarchives.org/OAI/2.0/oai_dc/"></oai_dc:dc>'
    records = oai.parse_response(
        _list(_record("a", dc), f"<record><header><identifier>{DS}b</identifier></header></record>")
    ).records
    assert records[0].problem and "'dc', not an rdf:RDF" in records[0].problem
    assert records[1].problem == "the record has no metadata"


# -- records → graph ------------------------------------------------------------------------------


def test_records_merge_into_one_graph_and_a_broken_one_stays_alone() -> None:
    broken = (
        f'<rdf:RDF {NS}><dcat:Dataset rdf:about="{DS}c" rdf:ID="c">'
        "<dct:title>C</dct:title></dcat:Dataset></rdf:RDF>"
    )
    # record a relies on namespaces declared on the envelope, not on its rdf:RDF
    bare = (
        f'<rdf:RDF><dcat:Dataset rdf:about="{DS}a"><dct:title>A</dct:title>'
        "</dcat:Dataset></rdf:RDF>"
    )
    body = _response(
        f"<ListRecords>{_record('a', bare)}{_record('b')}{_record('c', broken)}{_record('d')}"
        f"{_record('e', deleted=True)}</ListRecords>",
        root_ns=NS,
    )
    page = oai.records_page(
        "https://n.example/oai?verb=ListRecords", oai.parse_response(body).records
    )
    assert page.live == [DS + "a", DS + "b", DS + "c", DS + "d"]
    assert page.deleted == [DS + "e"]
    assert [f["record"] for f in page.failures] == [DS + "c"]
    assert "not valid RDF/XML" in page.failures[0]["message"]
    graph = page.graph
    assert graph.value(URIRef(DS + "a"), DCT.title) == Literal("A")
    # language tags and datatypes survive the re-serialisation
    assert graph.value(URIRef(DS + "b"), DCT.title) == Literal("Dataset b", lang="en")
    assert graph.value(URIRef(DS + "b"), DCT.issued) == Literal("2024-01-02", datatype=XSD.date)
    # both records call their contact point _:b0; merged, they stay two nodes
    kinds = {o for o in graph.subjects(VCARD.fn, None)}
    assert len(kinds) == 2 and all(isinstance(k, BNode) for k in kinds)
    assert (URIRef(DS + "c"), None, None) not in graph


# -- DCAT deletion announcements ------------------------------------------------------------------

DELETIONS = b"""@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix adms: <http://www.w3.org/ns/adms#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
<https://node.example/dcat/catalog> a dcat:Catalog ;
    dcat:record <https://node.example/dcat/records/1>, <https://node.example/dcat/records/2>,
        <https://node.example/dcat/records/3> .
<https://node.example/dcat/records/1> a dcat:CatalogRecord ;
    foaf:primaryTopic <https://provider.example/datasets/lung-ct> ;
    adms:status <http://purl.org/adms/changetype/deleted> ;
    dct:modified "2026-11-28T10:00:00Z"^^xsd:dateTime .
<https://provider.example/datasets/lung-ct> a dcat:Resource .
<https://node.example/dcat/records/2> a dcat:CatalogRecord ;
    foaf:primaryTopic <https://provider.example/datasets/breast-mg> ;
    adms:status <http://purl.org/adms/changetype/updated> .
<https://node.example/dcat/records/3> a dcat:CatalogRecord ;
    foaf:primaryTopic <https://provider.example/datasets/brain-mr> ;
    adms:status <http://purl.org/adms/changetype/created> .
"""


def test_deleted_catalogue_records_are_found_by_both_cuts() -> None:
    url = "https://node.example/dcat/catalog?modified_since=2026-11-01T00:00:00Z"
    profile = get_profile()
    graph = profile.canonicalise(parse_rdf(DELETIONS, filename=url, base=url))
    index = fastcut.index_page(DELETIONS, url)
    expected = ["https://provider.example/datasets/lung-ct"]
    assert deleted_topics(graph) == deleted_topics(index) == expected
    for page in (graph, index):
        out = extract_page(profile, page, url, "org-a", {}, validate=False)
        # neither the records nor the deleted dataset's stub are datasets to read
        assert (out.nodes, out.failures, out.records) == (0, [], [])
        assert out.deleted == expected
