"""The OAI-PMH 2.0 provider end to end: real PostgreSQL, the HTTP layer, every response body
validated against the official OAI-PMH schema (with the oai_dc and the lax rdf:RDF schemas for
the metadata), offline.

One catalogue for the whole module (read-only tests): 250 published datasets over three
organisations (five of them uploaded as EUCAIM-DCAT-AP Turtle, with IRIs of their own), one
withdrawn and one unpublished again (deleted records), one draft, and a few with chosen change
times for the from/until tests.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import psycopg
import pytest
import xmlschema
from rdflib import Graph, Literal, URIRef

from catalogue.api.app import create_app
from catalogue.dcat.namespaces import DCAT, DCT, RDF
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.resources import resource_dir
from catalogue.runtime import Runtime
from catalogue.services.oai import OAI_DC_NS, OAI_NS, RDF_NS, TokenCodec
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES
from tests.conftest import _with_database, make_config
from tests.integration.test_api_auth import auth

BASE = "https://catalogue.example.org"
BASE_URL = BASE + "/oai"
NS = {"oai": OAI_NS, "oai_dc": OAI_DC_NS, "dc": "http://purl.org/dc/elements/1.1/",
      "rdf": RDF_NS}
XSD = resource_dir("ontologies") / "xsd"
ORGANISATIONS = (("org-a", "Provider A & Sons <Imaging>"), ("org-b", "Provider B"),
                 ("org-c", "Provider C"))
MINIMAL = 244  # plus the tricky one and five Turtle uploads: 250 published
TRICKY_TITLE = "Lung & <liver> \x01cohort\x0b \ufffe\"quoted\""
TRICKY_CLEAN = 'Lung & <liver> cohort "quoted"'
TIMES = {  # dataset identifier -> updated_at (microseconds matter: datestamps are seconds)
    "ds-000": datetime(2019, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    "ds-001": datetime(2020, 1, 1, 10, 0, 0, 250000, tzinfo=UTC),
    "ds-002": datetime(2020, 1, 1, 10, 0, 1, 999999, tzinfo=UTC),
    "ds-003": datetime(2020, 1, 2, 0, 0, 0, tzinfo=UTC),
    "withdrawn": datetime(2020, 1, 1, 12, 0, 0, 500000, tzinfo=UTC),
}


# -- the catalogue ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oai_runtime(pg_url: str, template_db: str,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    name = f"oai_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    config = make_config(tmp_path_factory.mktemp("oai"), _with_database(pg_url, name),
                         base_url=BASE, catalog_title="Cancer Imaging & Co <OAI>",
                         catalog_admin_email="oai-admin@example.org")
    rt = Runtime(config).start()
    yield rt
    rt.close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def client(oai_runtime: Runtime) -> Any:
    app = create_app(runtime=oai_runtime, background_indexer=False)
    app.testing = False
    return app.test_client()


@pytest.fixture(scope="module")
def world(oai_runtime: Runtime, client: Any) -> dict[str, Any]:
    """Ids and IRIs of the datasets; see the module notes."""
    rt = oai_runtime
    for org, name in ORGANISATIONS:
        rt.identities.create_organisation(SYSTEM, Organisation(org, name, "ES"))
    rt.identities.create_user(SYSTEM, User("", "prov-a", Role.PROVIDER, "org-a"))
    token = rt.identities.issue_token(SYSTEM, "prov-a").secret
    ids: dict[str, str] = {}
    for i in range(MINIMAL):
        ds = Dataset(identifier=f"ds-{i:03d}", organisation_id=ORGANISATIONS[i % 3][0],
                     title={"en": f"Dataset {i}", **({"de": f"Datensatz {i}"} if i % 7 == 0
                                                      else {})},
                     description={"en": f"Description {i}"},
                     keywords=["imaging", f"k{i}"], countries=["ES", "DE"][: 1 + i % 2],
                     access_rights="http://publications.europa.eu/resource/authority/"
                                   "access-right/RESTRICTED",
                     status=DatasetStatus.PUBLISHED)
        ids[ds.identifier] = str(rt.datasets.save(SYSTEM, ds)[0].id)
    tricky = Dataset(identifier="tricky", organisation_id="org-b",
                     title={"en": TRICKY_TITLE, "de": "Lunge & Leber"},
                     description={"en": "A <b>bold</b> & \x02description"},
                     keywords=["a&b", "<x>"], status=DatasetStatus.PUBLISHED,
                     fields={"languages": ["http://publications.europa.eu/resource/authority/"
                                           "language/ENG", "urn:example:language:x"]})
    ids["tricky"] = str(rt.datasets.save(SYSTEM, tricky)[0].id)
    iris: dict[str, str] = {}
    for i in range(5):
        identifier, ttl = record(i)
        body = (PREFIXES + EUCAIM_PREFIX + ttl.replace("@@BASE@@", "https://prov.example"))
        r = client.post("/api/v1/datasets?organisation_id=org-a&status=published",
                        data=body.encode(), headers={**auth(token),
                                                     "Content-Type": "text/turtle"})
        assert r.status_code == 201, r.get_data(as_text=True)
        ids[identifier] = r.json["id"]
        assert r.json["iri"], "a Turtle description keeps its dataset IRI"
        iris[identifier] = r.json["iri"]
    for key, status in (("withdrawn", DatasetStatus.WITHDRAWN),
                        ("unpublished", DatasetStatus.DRAFT)):
        ds = Dataset(identifier=key, organisation_id="org-c", title={"en": key},
                     status=DatasetStatus.PUBLISHED)
        ids[key] = str(rt.datasets.save(SYSTEM, ds)[0].id)
        rt.datasets.set_status(SYSTEM, ids[key], status)
    draft = Dataset(identifier="draft", organisation_id="org-c", title={"en": "A draft"})
    ids["draft"] = str(rt.datasets.save(SYSTEM, draft)[0].id)
    with rt.database.transaction() as conn:
        for key, when in TIMES.items():
            conn.execute("UPDATE datasets SET updated_at = %s WHERE id = %s", (when, ids[key]))
    for key, dataset_id in ids.items():
        iris.setdefault(key, f"{BASE}/dcat/datasets/{dataset_id}")
    live = {k for k in ids if k not in ("withdrawn", "unpublished", "draft")}
    assert len(live) == 250
    return {"ids": ids, "iris": iris, "live": live, "deleted": {"withdrawn", "unpublished"}}


# -- requests and the schema ------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> xmlschema.XMLSchema:
    """The official OAI-PMH schema, the metadata schemas beside it; nothing from the network."""
    return xmlschema.XMLSchema(
        str(XSD / "OAI-PMH.xsd"),
        locations=[(OAI_DC_NS, str(XSD / "oai_dc.xsd")), (RDF_NS, str(XSD / "rdf-lax.xsd"))],
        allow="local")


def _check(r: Any, schema: xmlschema.XMLSchema) -> ET.Element:
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.headers["Content-Type"] == "text/xml; charset=utf-8"
    body = r.get_data()
    schema.validate(body)  # raises with the reason when invalid
    root = ET.fromstring(body)
    assert root.tag == f"{{{OAI_NS}}}OAI-PMH"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                        root.findtext("oai:responseDate", namespaces=NS) or "")
    return root


def oai(client: Any, schema: xmlschema.XMLSchema, *args: tuple[str, str]) -> ET.Element:
    """GET /oai with ``args`` (repeats kept); the body, valid against the schema."""
    return _check(client.get("/oai?" + urlencode(list(args))), schema)


def error(root: ET.Element) -> str:
    errors = root.findall("oai:error", NS)
    assert errors, ET.tostring(root, encoding="unicode")[:2000]
    return errors[0].attrib["code"]


def request_of(root: ET.Element) -> ET.Element:
    req = root.find("oai:request", NS)
    assert req is not None
    assert req.text == BASE_URL
    return req


def harvest(client: Any, schema: xmlschema.XMLSchema, verb: str,
            *args: tuple[str, str]) -> tuple[list[ET.Element], list[dict[str, str]]]:
    """Every item of a list (headers or records), following the resumption tokens, and the
    attributes of each resumptionToken element met."""
    items: list[ET.Element] = []
    tokens: list[dict[str, str]] = []
    root = oai(client, schema, ("verb", verb), *args)
    while True:
        container = root.find(f"oai:{verb}", NS)
        assert container is not None, ET.tostring(root, encoding="unicode")[:2000]
        items += container.findall("oai:header" if verb == "ListIdentifiers" else "oai:record",
                                   NS)
        token = container.find("oai:resumptionToken", NS)
        if token is None:
            return items, tokens
        tokens.append({**token.attrib, "text": token.text or ""})
        if not token.text:
            return items, tokens
        root = oai(client, schema, ("verb", verb), ("resumptionToken", token.text))
        assert request_of(root).attrib == {"verb": verb, "resumptionToken": token.text}


def header_of(item: ET.Element) -> ET.Element:
    return item if item.tag == f"{{{OAI_NS}}}header" else item.find("oai:header", NS)  # type: ignore[return-value]


def identifiers(items: list[ET.Element]) -> list[str]:
    return [header_of(i).findtext("oai:identifier", namespaces=NS) or "" for i in items]


def expected(world: dict[str, Any], keys: set[str]) -> set[str]:
    return {world["iris"][k] for k in keys}


def metadata_graph(record_element: ET.Element) -> Graph:
    """The dcat_ap metadata of a record, parsed as RDF/XML."""
    rdf_root = record_element.find("oai:metadata/rdf:RDF", NS)
    assert rdf_root is not None
    return Graph().parse(data=ET.tostring(rdf_root), format="xml")


# -- Identify, formats, sets ------------------------------------------------------------------


def test_identify(client: Any, schema: xmlschema.XMLSchema, world: dict[str, Any]) -> None:
    root = oai(client, schema, ("verb", "Identify"))
    assert request_of(root).attrib == {"verb": "Identify"}
    identify = root.find("oai:Identify", NS)
    assert identify is not None
    values = {child.tag.split("}")[1]: child.text for child in identify}
    assert values == {
        "repositoryName": "Cancer Imaging & Co <OAI>", "baseURL": BASE_URL,
        "protocolVersion": "2.0", "adminEmail": "oai-admin@example.org",
        "earliestDatestamp": "2019-12-31T23:59:59Z", "deletedRecord": "persistent",
        "granularity": "YYYY-MM-DDThh:mm:ssZ"}


def test_list_metadata_formats(client: Any, schema: xmlschema.XMLSchema,
                               world: dict[str, Any]) -> None:
    def formats(root: ET.Element) -> dict[str, tuple[str, str]]:
        return {f.findtext("oai:metadataPrefix", namespaces=NS) or "": (
            f.findtext("oai:schema", namespaces=NS) or "",
            f.findtext("oai:metadataNamespace", namespaces=NS) or "")
            for f in root.findall("oai:ListMetadataFormats/oai:metadataFormat", NS)}

    everything = {"oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd", OAI_DC_NS),
                  "dcat_ap": (f"{BASE_URL}/schemas/rdf-lax.xsd", RDF_NS)}
    assert formats(oai(client, schema, ("verb", "ListMetadataFormats"))) == everything
    for key in ("gen-000000", "ds-010", "withdrawn"):
        root = oai(client, schema, ("verb", "ListMetadataFormats"),
                   ("identifier", world["iris"][key]))
        assert formats(root) == everything
        assert request_of(root).attrib["identifier"] == world["iris"][key]
    for unknown in (world["iris"]["draft"], "https://nowhere.example/x", "not a uri"):
        root = oai(client, schema, ("verb", "ListMetadataFormats"), ("identifier", unknown))
        assert error(root) == "idDoesNotExist"
        assert request_of(root).attrib == {"verb": "ListMetadataFormats", "identifier": unknown}


def test_the_advertised_schema_is_served(client: Any) -> None:
    r = client.get("/oai/schemas/rdf-lax.xsd")
    assert r.status_code == 200
    assert r.get_data() == (XSD / "rdf-lax.xsd").read_bytes()
    for name in ("nothing.xsd", "SOURCES.md", "..%2F..%2Fsetup.cfg"):
        assert client.get(f"/oai/schemas/{name}").status_code == 404


def test_list_sets(client: Any, schema: xmlschema.XMLSchema, world: dict[str, Any]) -> None:
    root = oai(client, schema, ("verb", "ListSets"))
    sets = [(s.findtext("oai:setSpec", namespaces=NS), s.findtext("oai:setName", namespaces=NS))
            for s in root.findall("oai:ListSets/oai:set", NS)]
    assert sets == list(ORGANISATIONS)
    assert root.find("oai:ListSets/oai:resumptionToken", NS) is None


# -- lists ------------------------------------------------------------------------------------


def test_list_identifiers_pages_through_every_record_once(
        client: Any, schema: xmlschema.XMLSchema, world: dict[str, Any]) -> None:
    items, tokens = harvest(client, schema, "ListIdentifiers", ("metadataPrefix", "oai_dc"))
    found = identifiers(items)
    assert len(found) == len(set(found)) == 252
    assert set(found) == expected(world, world["live"] | world["deleted"])
    assert [t["cursor"] for t in tokens] == ["0", "100", "200"]
    assert all(t["completeListSize"] == "252" for t in tokens)
    assert tokens[-1]["text"] == "" and all(t["text"] for t in tokens[:-1])
    deleted = {header_of(i).findtext("oai:identifier", namespaces=NS)
               for i in items if header_of(i).get("status") == "deleted"}
    assert deleted == expected(world, world["deleted"])
    for item in items:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ",
                            item.findtext("oai:datestamp", namespaces=NS) or "")
        assert item.findtext("oai:setSpec", namespaces=NS) in {"org-a", "org-b", "org-c"}


def test_list_records_in_oai_dc(client: Any, schema: xmlschema.XMLSchema,
                                world: dict[str, Any]) -> None:
    items, tokens = harvest(client, schema, "ListRecords", ("metadataPrefix", "oai_dc"))
    assert len(items) == 252 and len(set(identifiers(items))) == 252
    assert tokens[0]["completeListSize"] == "252"
    by_iri = dict(zip(identifiers(items), items, strict=True))
    for key in world["deleted"]:
        deleted = by_iri[world["iris"][key]]
        assert header_of(deleted).get("status") == "deleted"
        assert deleted.find("oai:metadata", NS) is None
    dc = by_iri[world["iris"]["ds-007"]].find("oai:metadata/oai_dc:dc", NS)
    assert dc is not None
    assert {(t.get("{http://www.w3.org/XML/1998/namespace}lang"), t.text)
            for t in dc.findall("dc:title", NS)} == {("en", "Dataset 7"), ("de", "Datensatz 7")}
    assert dc.findtext("dc:identifier", namespaces=NS) == world["iris"]["ds-007"]
    assert dc.findtext("dc:publisher", namespaces=NS) == "Provider B"
    assert dc.findtext("dc:type", namespaces=NS) == "Dataset"
    assert [s.text for s in dc.findall("dc:subject", NS)] == ["imaging", "k7"]
    assert [c.text for c in dc.findall("dc:coverage", NS)] == ["ES", "DE"]
    assert (dc.findtext("dc:rights", namespaces=NS) or "").endswith("/access-right/RESTRICTED")
    assert dc.findtext("dc:date", namespaces=NS)
    for key in world["live"]:
        assert by_iri[world["iris"][key]].find("oai:metadata/oai_dc:dc", NS) is not None


def test_list_records_in_dcat_ap(client: Any, schema: xmlschema.XMLSchema,
                                 world: dict[str, Any]) -> None:
    items, tokens = harvest(client, schema, "ListRecords", ("metadataPrefix", "dcat_ap"))
    assert len(items) == 252 and [t["cursor"] for t in tokens] == ["0", "100", "200"]
    by_iri = dict(zip(identifiers(items), items, strict=True))
    for key in world["live"]:
        graph = metadata_graph(by_iri[world["iris"][key]])
        assert (URIRef(world["iris"][key]), RDF.type, DCAT.Dataset) in graph, key
    for key in world["deleted"]:
        assert by_iri[world["iris"][key]].find("oai:metadata", NS) is None


def test_a_set_holds_one_organisations_records(client: Any, schema: xmlschema.XMLSchema,
                                               world: dict[str, Any]) -> None:
    items, tokens = harvest(client, schema, "ListIdentifiers", ("metadataPrefix", "dcat_ap"),
                            ("set", "org-b"))
    assert {header_of(i).findtext("oai:setSpec", namespaces=NS) for i in items} == {"org-b"}
    org_b = {f"ds-{i:03d}" for i in range(MINIMAL) if i % 3 == 1} | {"tricky"}
    assert set(identifiers(items)) == expected(world, org_b)
    assert tokens == [] or tokens[0]["completeListSize"] == str(len(org_b))
    org_c, _ = harvest(client, schema, "ListIdentifiers", ("metadataPrefix", "oai_dc"),
                       ("set", "org-c"))
    assert expected(world, world["deleted"]) <= set(identifiers(org_c))
    assert world["iris"]["draft"] not in identifiers(org_c)
    for unknown in ("org-z", "org-a:sub"):
        root = oai(client, schema, ("verb", "ListRecords"), ("metadataPrefix", "oai_dc"),
                   ("set", unknown))
        assert error(root) == "noRecordsMatch"
        assert request_of(root).attrib["set"] == unknown


@pytest.mark.parametrize(("start", "end", "keys"), [
    ("2020-01-01T10:00:00Z", "2020-01-01T10:00:01Z", {"ds-001", "ds-002"}),
    ("2020-01-01T10:00:01Z", "2020-01-01T10:00:01Z", {"ds-002"}),
    (None, "2020-01-01T10:00:00Z", {"ds-000", "ds-001"}),
    ("2019-12-31T23:59:59Z", "2019-12-31T23:59:59Z", {"ds-000"}),
    ("2020-01-01", "2020-01-01", {"ds-001", "ds-002", "withdrawn"}),
    (None, "2019-12-31", {"ds-000"}),
    ("2020-01-01T10:00:02Z", "2020-01-02T00:00:00Z", {"withdrawn", "ds-003"}),
])
def test_from_and_until_are_inclusive(client: Any, schema: xmlschema.XMLSchema,
                                      world: dict[str, Any], start: str | None,
                                      end: str | None, keys: set[str]) -> None:
    args = [("metadataPrefix", "oai_dc")] + ([("from", start)] if start else []) + \
        ([("until", end)] if end else [])
    items, _ = harvest(client, schema, "ListRecords", *args)
    assert set(identifiers(items)) == expected(world, keys)


def test_the_widest_range_holds_everything(client: Any, schema: xmlschema.XMLSchema,
                                           world: dict[str, Any]) -> None:
    for start, end in (("0001-01-01", "9999-12-31"),
                       ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")):
        _, tokens = harvest(client, schema, "ListIdentifiers", ("metadataPrefix", "oai_dc"),
                            ("from", start), ("until", end))
        assert tokens[0]["completeListSize"] == "252"


def test_from_alone_reaches_the_present(client: Any, schema: xmlschema.XMLSchema,
                                        world: dict[str, Any]) -> None:
    items, tokens = harvest(client, schema, "ListIdentifiers", ("metadataPrefix", "oai_dc"),
                            ("from", "2020-01-02"))
    assert set(identifiers(items)) == expected(
        world, (world["live"] | world["deleted"]) - {"ds-000", "ds-001", "ds-002",
                                                      "withdrawn"})
    assert tokens[0]["completeListSize"] == str(252 - 4)


# -- single records ---------------------------------------------------------------------------


def _get(client: Any, schema: xmlschema.XMLSchema, iri: str, prefix: str) -> ET.Element:
    root = oai(client, schema, ("verb", "GetRecord"), ("identifier", iri),
               ("metadataPrefix", prefix))
    assert request_of(root).attrib == {"verb": "GetRecord", "identifier": iri,
                                       "metadataPrefix": prefix}
    found = root.find("oai:GetRecord/oai:record", NS)
    assert found is not None, ET.tostring(root, encoding="unicode")[:2000]
    assert header_of(found).findtext("oai:identifier", namespaces=NS) == iri
    return found


def test_get_record_in_both_formats(client: Any, schema: xmlschema.XMLSchema,
                                    world: dict[str, Any]) -> None:
    for key in ("gen-000003", "ds-042"):
        iri = world["iris"][key]
        graph = metadata_graph(_get(client, schema, iri, "dcat_ap"))
        assert (URIRef(iri), RDF.type, DCAT.Dataset) in graph
        assert (URIRef(iri), DCT.identifier, Literal(key)) in graph
        titles = {str(t) for t in graph.objects(URIRef(iri), DCT.title)}
        assert titles
        dc = _get(client, schema, iri, "oai_dc").find("oai:metadata/oai_dc:dc", NS)
        assert dc is not None
        assert dc.findtext("dc:identifier", namespaces=NS) == iri
        assert {t.text for t in dc.findall("dc:title", NS)} == titles
    header = header_of(_get(client, schema, world["iris"]["gen-000003"], "oai_dc"))
    assert header.findtext("oai:setSpec", namespaces=NS) == "org-a"
    assert header.get("status") is None


def test_withdrawn_and_unpublished_datasets_are_deleted_records(
        client: Any, schema: xmlschema.XMLSchema, world: dict[str, Any]) -> None:
    for key in ("withdrawn", "unpublished"):
        for prefix in ("oai_dc", "dcat_ap"):
            found = _get(client, schema, world["iris"][key], prefix)
            assert header_of(found).get("status") == "deleted"
            assert found.find("oai:metadata", NS) is None
    header = header_of(_get(client, schema, world["iris"]["withdrawn"], "oai_dc"))
    assert header.findtext("oai:datestamp", namespaces=NS) == "2020-01-01T12:00:00Z"
    assert header.findtext("oai:setSpec", namespaces=NS) == "org-c"


def test_drafts_never_appear(client: Any, schema: xmlschema.XMLSchema,
                             world: dict[str, Any]) -> None:
    for prefix in ("oai_dc", "dcat_ap"):
        root = oai(client, schema, ("verb", "GetRecord"), ("identifier", world["iris"]["draft"]),
                   ("metadataPrefix", prefix))
        assert error(root) == "idDoesNotExist"
    # a dataset with an IRI of its own is not found under the catalogue's fallback IRI
    fallback = f"{BASE}/dcat/datasets/{world['ids']['gen-000001']}"
    root = oai(client, schema, ("verb", "GetRecord"), ("identifier", fallback),
               ("metadataPrefix", "oai_dc"))
    assert error(root) == "idDoesNotExist"


def test_markup_and_control_characters_stay_well_formed(
        client: Any, schema: xmlschema.XMLSchema, world: dict[str, Any]) -> None:
    iri = world["iris"]["tricky"]
    dc = _get(client, schema, iri, "oai_dc").find("oai:metadata/oai_dc:dc", NS)
    assert dc is not None
    titles = {t.get("{http://www.w3.org/XML/1998/namespace}lang"): t.text
              for t in dc.findall("dc:title", NS)}
    assert titles == {"en": TRICKY_CLEAN, "de": "Lunge & Leber"}
    assert dc.findtext("dc:description", namespaces=NS) == "A <b>bold</b> & description"
    assert [s.text for s in dc.findall("dc:subject", NS)] == ["a&b", "<x>"]
    assert dc.findtext("dc:publisher", namespaces=NS) == "Provider B"
    assert [lang.text for lang in dc.findall("dc:language", NS)] == ["eng",
                                                                    "urn:example:language:x"]
    graph = metadata_graph(_get(client, schema, iri, "dcat_ap"))
    assert Literal(TRICKY_CLEAN, lang="en") in set(graph.objects(URIRef(iri), DCT.title))
    sets = oai(client, schema, ("verb", "ListSets"))
    assert "Provider A & Sons <Imaging>" in [
        s.text for s in sets.findall("oai:ListSets/oai:set/oai:setName", NS)]


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "code"), [
    ([], "badVerb"),
    ([("verb", "Explode")], "badVerb"),
    ([("verb", "Identify"), ("verb", "Identify")], "badVerb"),
    ([("verb", "ListSets"), ("verb", "Identify")], "badVerb"),
    ([("metadataPrefix", "oai_dc")], "badVerb"),
    ([("verb", "Identify"), ("colour", "red")], "badArgument"),
    ([("verb", "Identify"), ("identifier", "x")], "badArgument"),
    ([("verb", "ListRecords")], "badArgument"),
    ([("verb", "ListIdentifiers"), ("set", "org-a")], "badArgument"),
    ([("verb", "GetRecord"), ("metadataPrefix", "oai_dc")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("metadataPrefix", "oai_dc")],
     "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("set", "org-a"),
      ("set", "org-b")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "yesterday")],
     "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2020-02-30")],
     "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2020-01-01T10:00Z")],
     "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"),
      ("from", "2020-01-01T10:00:00+01:00")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2020-01-01"),
      ("until", "2020-01-02T00:00:00Z")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("from", "2020-01-02"),
      ("until", "2020-01-01")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("set", "")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai dc")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("set", "a b")], "badArgument"),
    ([("verb", "ListRecords"), ("metadataPrefix", "oai_dc"), ("resumptionToken", "abc")],
     "badArgument"),
    ([("verb", "ListSets"), ("resumptionToken", "abc"), ("set", "org-a")], "badArgument"),
])
def test_bad_verbs_and_arguments(client: Any, schema: xmlschema.XMLSchema,
                                 world: dict[str, Any], args: list[tuple[str, str]],
                                 code: str) -> None:
    root = oai(client, schema, *args)
    assert error(root) == code
    assert request_of(root).attrib == {}  # the base URL only, no arguments


def _token(client: Any, schema: xmlschema.XMLSchema, verb: str) -> str:
    root = oai(client, schema, ("verb", verb), ("metadataPrefix", "oai_dc"))
    token = root.findtext(f"oai:{verb}/oai:resumptionToken", namespaces=NS)
    assert token
    return token


def test_bad_resumption_tokens(client: Any, schema: xmlschema.XMLSchema,
                               world: dict[str, Any]) -> None:
    token = _token(client, schema, "ListRecords")
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)  # URL-safe as it is
    body, mac = token.split(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    bad = ["garbage", "", "a.b", "x" * 5000, f"{flipped}.{mac}", f"{body}.{mac[:-2]}AA",
           token + "x", f"{body}.{mac}.{mac}", "\x01\x02<&>"]
    for value in bad:
        root = oai(client, schema, ("verb", "ListRecords"), ("resumptionToken", value))
        assert error(root) == "badResumptionToken", value
        assert request_of(root).attrib["verb"] == "ListRecords"
    # a token is for the verb that issued it
    other = _token(client, schema, "ListIdentifiers")
    root = oai(client, schema, ("verb", "ListRecords"), ("resumptionToken", other))
    assert error(root) == "badResumptionToken"
    root = oai(client, schema, ("verb", "ListSets"), ("resumptionToken", token))
    assert error(root) == "badResumptionToken"
    # and works again and again (stateless)
    for _ in range(2):
        root = oai(client, schema, ("verb", "ListRecords"), ("resumptionToken", token))
        assert len(root.findall("oai:ListRecords/oai:record", NS)) == 100


def test_unknown_formats_identifiers_and_empty_lists(client: Any, schema: xmlschema.XMLSchema,
                                                     world: dict[str, Any]) -> None:
    iri = world["iris"]["ds-001"]
    for args in ([("verb", "GetRecord"), ("identifier", iri), ("metadataPrefix", "marc21")],
                 [("verb", "ListRecords"), ("metadataPrefix", "marc21")],
                 [("verb", "ListIdentifiers"), ("metadataPrefix", "marc21")]):
        root = oai(client, schema, *args)
        assert error(root) == "cannotDisseminateFormat"
        assert request_of(root).attrib == dict(args)  # echoed: not a badArgument
    root = oai(client, schema, ("verb", "GetRecord"), ("identifier", "urn:x:nothing"),
               ("metadataPrefix", "oai_dc"))
    assert error(root) == "idDoesNotExist"
    for args in ([("until", "1990-01-01")], [("from", "2999-01-01T00:00:00Z")]):
        root = oai(client, schema, ("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"),
                   *args)
        assert error(root) == "noRecordsMatch"
        assert request_of(root).attrib["metadataPrefix"] == "oai_dc"


# -- HTTP ---------------------------------------------------------------------------------------


def _without_date(body: bytes) -> bytes:
    return re.sub(rb"<responseDate>[^<]*</responseDate>", b"", body)


def test_post_form_works_like_get(client: Any, schema: xmlschema.XMLSchema,
                                  world: dict[str, Any]) -> None:
    for args in ([("verb", "ListIdentifiers"), ("metadataPrefix", "oai_dc"), ("set", "org-c")],
                 [("verb", "GetRecord"), ("identifier", world["iris"]["tricky"]),
                  ("metadataPrefix", "dcat_ap")],
                 [("verb", "Identify"), ("verb", "Identify")]):
        got = client.get("/oai?" + urlencode(args))
        posted = client.post("/oai", data=urlencode(args),
                             content_type="application/x-www-form-urlencoded")
        _check(posted, schema)
        assert _without_date(posted.get_data()) == _without_date(got.get_data())


def test_oai_is_in_the_openapi_document(client: Any) -> None:
    paths = client.get("/api/v1/openapi.json").json["paths"]
    assert set(paths["/oai"]) == {"get", "post"}
    assert "/oai/schemas/{name}" in paths


def test_shipped_schemas_resolve_offline() -> None:
    for path in Path(XSD).glob("*.xsd"):
        text = path.read_text()
        assert "schemaLocation=\"http" not in re.sub(r"<xs:documentation>.*?</xs:documentation>",
                                                     "", text, flags=re.S), path.name


def test_signed_tokens_of_the_wrong_shape_are_refused(
        client: Any, schema: xmlschema.XMLSchema, oai_runtime: Runtime,
        world: dict[str, Any]) -> None:
    codec = TokenCodec(oai_runtime.secret_key)
    good = {"v": 1, "verb": "ListRecords", "p": "oai_dc", "s": None, "f": None, "u": None,
            # after the smallest id, so that records follow (ids are random: after ds-001
            # there were none when its id happened to be the largest)
            "a": min(world["ids"].values()), "c": 100}

    def signed(payload: Any) -> str:
        raw = json.dumps(payload).encode()
        return f"{codec._b64(raw)}.{codec._b64(codec._mac(raw))}"

    root = oai(client, schema, ("verb", "ListRecords"), ("resumptionToken", signed(good)))
    assert root.find("oai:ListRecords", NS) is not None  # the shape below is the real one
    for change in ({"v": 2}, {"p": "marc21"}, {"p": ["oai_dc"]}, {"s": "a b"}, {"s": 3},
                   {"f": "yesterday"}, {"f": "2020-01-02", "u": "2020-01-01"},
                   {"f": "2020-01-01", "u": "2020-01-01T00:00:00Z"}, {"a": "not-a-uuid"},
                   {"a": None}, {"c": 0}, {"c": -5}, {"c": "100"}, {"c": True}, {"v": True},
                   {"extra": 1}):
        root = oai(client, schema, ("verb", "ListRecords"),
                   ("resumptionToken", signed({**good, **change})))
        assert error(root) == "badResumptionToken", change
    for payload in ([1, 2], "token", None, {k: v for k, v in good.items() if k != "c"}):
        root = oai(client, schema, ("verb", "ListRecords"), ("resumptionToken", signed(payload)))
        assert error(root) == "badResumptionToken", payload


def test_an_empty_catalogue(tmp_path: Path, db_url: str, schema: xmlschema.XMLSchema) -> None:
    config = make_config(tmp_path, db_url, catalog_admin_email="oai-admin@example.org")
    rt = Runtime(config).start()
    try:
        client = create_app(runtime=rt, background_indexer=False).test_client()
        identify = oai(client, schema, ("verb", "Identify"))
        earliest = identify.findtext("oai:Identify/oai:earliestDatestamp", namespaces=NS)
        assert earliest and earliest[:4] == str(datetime.now(UTC).year)
        assert error(oai(client, schema, ("verb", "ListSets"))) == "noSetHierarchy"
        for verb in ("ListIdentifiers", "ListRecords"):
            assert error(oai(client, schema, ("verb", verb), ("metadataPrefix", "oai_dc"))) \
                == "noRecordsMatch"
    finally:
        rt.close()
