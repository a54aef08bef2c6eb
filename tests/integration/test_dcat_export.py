"""The DCAT-AP export end to end: real PostgreSQL, the HTTP layer, every RDF format, SHACL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic

from catalogue.caching import FileCache, Joined
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.namespaces import ADMS, DCAT, DCT, EUCAIM, FOAF, HEALTHDCATAP, HYDRA, RDF
from catalogue.dcat.validation import get_validator
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.privacy.aggregates import protect
from catalogue.runtime import Runtime
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES
from tests.integration.test_api_auth import auth

PROVIDER = "https://provider.example"
FORMATS = {"turtle": "text/turtle", "rdfxml": "application/rdf+xml",
           "jsonld": "application/ld+json", "nt": "application/n-triples"}
CHANGED = URIRef("http://purl.org/adms/changetype/")


def turtle(i: int, version: str = "1.0.0") -> bytes:
    _, text = record(i, version=version)
    return (PREFIXES + EUCAIM_PREFIX + text.replace("@@BASE@@", PROVIDER)).encode()


def post(client: Any, token: str, org: str, i: int, status: str = "published",
         version: str = "1.0.0") -> str:
    r = client.post(f"/api/v1/datasets?organisation_id={org}&status={status}",
                    data=turtle(i, version), headers={**auth(token),
                                                       "Content-Type": "text/turtle"})
    assert r.status_code in (200, 201), r.json
    return str(r.json["id"])


def iri(i: int) -> URIRef:
    return URIRef(f"{PROVIDER}/dataset/gen-{i:06d}")


@pytest.fixture
def world(runtime: Runtime, client: Any) -> dict[str, Any]:
    ids = runtime.identities
    tokens: dict[str, str] = {}
    for org, country in (("org-a", "ES"), ("org-b", "DE")):
        ids.create_organisation(SYSTEM, Organisation(org, f"Provider {org[-1].upper()}", country))
        ids.create_user(SYSTEM, User("", f"prov-{org[-1]}", Role.PROVIDER, org))
        tokens[org] = ids.issue_token(SYSTEM, f"prov-{org[-1]}").secret
    datasets = {}
    for i in range(23):
        org = "org-a" if i % 2 else "org-b"
        datasets[i] = post(client, tokens[org], org, i)
    drafts = {i: post(client, tokens["org-a"], "org-a", i, status="draft") for i in (100, 101)}
    return {"tokens": tokens, "datasets": datasets, "drafts": drafts}


def pages(client: Any, fmt: str = "nt", size: int = 7, query: str = "",
          headers: dict[str, str] | None = None) -> list[tuple[Any, Graph]]:
    """Every page of the export, following hydra:next from the first."""
    url: str | None = f"/dcat/catalog?format={fmt}&page_size={size}{query}"
    out = []
    seen = set()
    while url:
        assert url not in seen
        seen.add(url)
        r = client.get(url, headers=headers or {})
        assert r.status_code == 200, r.data[:500]
        graph = parse_rdf(r.data, content_type=r.mimetype)
        out.append((r, graph))
        nxt = list(graph.objects(None, HYDRA.next))
        assert len(nxt) <= 1
        url = str(nxt[0]).replace("http://127.0.0.1:8080", "") if nxt else None
    return out


def content(body: bytes | Joined) -> bytes:
    """A page's body, read through its stored file when it has one."""
    if isinstance(body, Joined):
        try:
            return body.read()
        finally:
            body.close()
    return body


def listed(graph: Graph) -> list[URIRef]:
    return [o for o in graph.objects(None, DCAT.dataset) if isinstance(o, URIRef)]


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_pages_list_every_published_dataset_once(client: Any, world: dict[str, Any],
                                                 fmt: str) -> None:
    got = pages(client, fmt)
    assert len(got) == 4  # 23 datasets, 7 per page
    seen = [ds for _, graph in got for ds in listed(graph)]
    assert len(seen) == len(set(seen)) == 23
    assert set(seen) == {iri(i) for i in range(23)}  # drafts 100 and 101 never appear
    first = got[0][1]
    catalog = URIRef("http://127.0.0.1:8080/dcat/catalog")
    assert (catalog, RDF.type, DCAT.Catalog) in first
    assert first.value(catalog, HYDRA.totalItems) == Literal(23)
    view = first.value(catalog, HYDRA.view)
    assert first.value(view, HYDRA.last) is not None
    # hydra:last leads to the page hydra:next finally reaches
    last_url = str(first.value(view, HYDRA.last)).replace("http://127.0.0.1:8080", "")
    last = parse_rdf(client.get(last_url).data, content_type=FORMATS[fmt])
    assert set(listed(last)) == set(listed(got[-1][1]))
    assert list(got[-1][1].objects(None, HYDRA.next)) == []
    for response, graph in got:
        assert response.mimetype == FORMATS[fmt]
        # every listed dataset is described on its page, with its record
        for ds in listed(graph):
            assert (ds, RDF.type, DCAT.Dataset) in graph
            assert (ds, DCT.title, None) in graph
            records = list(graph.subjects(FOAF.primaryTopic, ds))
            assert len(records) == 1
            assert graph.value(records[0], ADMS.status) == CHANGED + "created"
            assert graph.value(records[0], DCT.modified) is not None


def test_page_formats_describe_the_same_graph(client: Any, world: dict[str, Any]) -> None:
    graphs = {fmt: pages(client, fmt, size=50)[0][1] for fmt in FORMATS}
    reference = graphs["nt"]
    assert len(reference) > 23 * 30
    for fmt, graph in graphs.items():
        # the page URL differs by format; the rest is the same graph
        assert isomorphic(_without_view(graph), _without_view(reference)), fmt


def _without_view(graph: Graph) -> Graph:
    out = Graph()
    views = set(graph.objects(None, HYDRA.view))
    for s, p, o in graph:
        if s in views or o in views:
            continue
        out.add((s, p, o))
    return out


def test_content_negotiation(client: Any, world: dict[str, Any]) -> None:
    for media in FORMATS.values():
        r = client.get("/dcat/catalog", headers={"Accept": f"text/html;q=0.5, {media}"})
        assert r.status_code == 200 and r.mimetype == media
        assert r.headers["Vary"] == "Accept"
    assert client.get("/dcat/catalog").mimetype == "text/turtle"  # no preference: Turtle
    # ?format= wins over Accept
    r = client.get("/dcat/catalog?format=jsonld", headers={"Accept": "text/turtle"})
    assert r.mimetype == "application/ld+json"
    bad = client.get("/dcat/catalog?format=pdf")
    assert bad.status_code == 400 and "format" in bad.json["error"]["message"]
    for query in ("page_size=0", "page_size=5000", "cursor=nope", "modified_since=yesterday"):
        r = client.get(f"/dcat/catalog?{query}")
        assert r.status_code == 400, query
        assert query.split("=")[0] in r.json["error"]["message"]


def test_export_conforms_to_the_shapes_the_input_was_validated_with(
        runtime: Runtime, client: Any, world: dict[str, Any]) -> None:
    # one dataset carries record-derived aggregates, as after a FHIR/OMOP/DICOMweb ingest
    counts = {"subjects": 140, "studies": 420, "modalities": {"MR": 90, "CT": 3},
              "body_parts": {"CHEST": 100}, "manufacturers": {"SIEMENS": 50},
              "sexes": {"female": 70, "male": 70}, "age_bands": {"50": 40, "55": 60, "90": 2},
              "study_years": {"2021": 200, "2022": 220}}
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE datasets SET aggregates = %s::jsonb, updated_at = now(), "
                     "version = version + 1 WHERE id = %s",
                     (_json(protect(counts)), world["datasets"][4]))
    whole = Graph()
    for _, graph in pages(client, "nt", size=10):
        whole += graph
    validator = get_validator()
    issues = validator.validate(whole)
    violations = [i.describe() for i in issues if i.severity == "violation"]
    assert violations == []
    # the aggregates are in, protected: exact counts above the floor, nothing below it
    ds = iri(4)
    assert whole.value(ds, HEALTHDCATAP.numberOfUniqueIndividuals).toPython() == 140
    assert whole.value(ds, HEALTHDCATAP.numberOfRecords).toPython() == 420
    assert whole.value(ds, HEALTHDCATAP.minTypicalAge).toPython() == 50
    assert whole.value(ds, HEALTHDCATAP.maxTypicalAge).toPython() == 59  # band 90 has 2
    # MR is written as its EUCAIM class; CT (3 studies, below the floor) is not named at all
    assert set(whole.objects(ds, EUCAIM.hasImageModality)) == {EUCAIM.IMG1000022}


def _json(value: Any) -> str:
    import json

    return json.dumps(value)


def test_provider_triples_are_preserved(runtime: Runtime, client: Any,
                                        world: dict[str, Any]) -> None:
    extra = (PREFIXES + EUCAIM_PREFIX + record(7)[1].replace("@@BASE@@", PROVIDER).replace(
        "dcat:version", '<https://provider.example/ns#localNote> "kept"@de ;\n  '
        '<https://provider.example/ns#scanner> [ <https://provider.example/ns#tesla> 3 ] ;\n'
        '  dcat:version')).encode()
    r = client.put(f"/api/v1/datasets/{world['datasets'][7]}?status=published", data=extra,
                   headers={**auth(world["tokens"]["org-a"]), "Content-Type": "text/turtle"})
    assert r.status_code == 200, r.json
    original = parse_rdf(extra, content_type="text/turtle")
    for fmt, media in FORMATS.items():
        r = client.get(f"/dcat/datasets/{world['datasets'][7]}?format={fmt}")
        assert r.status_code == 200 and r.mimetype == media
        exported = parse_rdf(r.data, content_type=media)
        # every provider triple is in the export (blank nodes compared by structure)
        reached = Graph()
        for triple in exported:
            if (triple[0], RDF.type, DCAT.CatalogRecord) not in exported and \
                    triple[1] != FOAF.primaryTopic:
                reached.add(triple)
        assert isomorphic(_ground(original), _ground(reached)), fmt


def _ground(graph: Graph) -> Graph:
    """``graph`` without statements about the catalogue's own records."""
    out = Graph()
    for s, p, o in graph:
        if p in (DCAT.record,) or (s, RDF.type, DCAT.CatalogRecord) in graph or \
                str(s).startswith(str(CHANGED)):
            continue
        out.add((s, p, o))
    return out


def test_single_dataset_and_record(client: Any, world: dict[str, Any]) -> None:
    ident = world["datasets"][3]
    r = client.get(f"/dcat/datasets/{ident}", headers={"Accept": "application/ld+json"})
    assert r.status_code == 200 and r.mimetype == "application/ld+json"
    graph = parse_rdf(r.data, content_type="application/ld+json")
    assert (iri(3), RDF.type, DCAT.Dataset) in graph
    rec = f"http://127.0.0.1:8080/dcat/records/{ident}"
    assert (URIRef(rec), FOAF.primaryTopic, iri(3)) in graph
    assert client.get(f"/dcat/datasets/{world['drafts'][100]}").status_code == 404
    assert client.get(f"/dcat/records/{world['drafts'][100]}").status_code == 404
    assert client.get("/dcat/datasets/not-a-uuid").status_code == 404
    r = client.delete(f"/api/v1/datasets/{ident}", headers=auth(world["tokens"]["org-a"]))
    assert r.status_code == 200
    assert client.get(f"/dcat/datasets/{ident}").status_code == 410
    gone = parse_rdf(client.get(f"/dcat/records/{ident}?format=nt").data,
                     content_type="application/n-triples")
    assert gone.value(URIRef(rec), ADMS.status) == CHANGED + "deleted"
    assert (iri(3), RDF.type, DCAT.Dataset) not in gone


def test_conditional_requests(client: Any, world: dict[str, Any]) -> None:
    first = client.get("/dcat/catalog?page_size=5")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    assert client.get("/dcat/catalog?page_size=5",
                      headers={"If-None-Match": etag}).status_code == 304
    assert client.get("/dcat/catalog?page_size=5",
                      headers={"If-Modified-Since": modified}).status_code == 304
    # another format or page size is another representation
    assert client.get("/dcat/catalog?page_size=5&format=nt",
                      headers={"If-None-Match": etag}).status_code == 200
    one = client.get(f"/dcat/datasets/{world['datasets'][2]}")
    assert client.get(f"/dcat/datasets/{world['datasets'][2]}",
                      headers={"If-None-Match": one.headers["ETag"]}).status_code == 304
    time.sleep(1.1)  # Last-Modified has one-second resolution
    post(client, world["tokens"]["org-b"], "org-b", 2, version="2.0.0")  # an edit
    again = client.get("/dcat/catalog?page_size=5", headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert client.get("/dcat/catalog?page_size=5",
                      headers={"If-Modified-Since": modified}).status_code == 200
    assert client.get(f"/dcat/datasets/{world['datasets'][2]}",
                      headers={"If-None-Match": one.headers["ETag"]}).status_code == 200


def test_incremental_listing_has_exactly_the_changes(client: Any,
                                                     world: dict[str, Any]) -> None:
    tokens, ds = world["tokens"], world["datasets"]
    time.sleep(0.05)
    since = datetime.now(UTC)
    time.sleep(0.05)
    post(client, tokens["org-b"], "org-b", 0, version="2.0.0")  # changed
    assert client.delete(f"/api/v1/datasets/{ds[5]}",
                         headers=auth(tokens["org-a"])).status_code == 200  # withdrawn
    post(client, tokens["org-a"], "org-a", 50)  # new
    assert client.post(f"/api/v1/datasets/{world['drafts'][100]}/publish",
                       headers=auth(tokens["org-a"])).status_code == 200  # published draft
    post(client, tokens["org-a"], "org-a", 102, status="draft")  # a new draft: not listed
    query = "&modified_since=" + since.isoformat().replace("+00:00", "Z")
    got = pages(client, "turtle", size=2, query=query)
    live = [d for _, g in got for d in listed(g)]
    assert sorted(live) == sorted([iri(0), iri(50), iri(100)])
    whole = Graph()
    for _, g in got:
        whole += g
    statuses = {whole.value(r, FOAF.primaryTopic): whole.value(r, ADMS.status)
                for r in whole.subjects(RDF.type, DCAT.CatalogRecord)}
    assert statuses == {iri(0): CHANGED + "updated", iri(50): CHANGED + "created",
                        iri(100): CHANGED + "updated", iri(5): CHANGED + "deleted"}
    assert (iri(5), RDF.type, DCAT.Dataset) not in whole  # announced, not described
    assert whole.value(URIRef("http://127.0.0.1:8080/dcat/catalog"),
                       HYDRA.totalItems) == Literal(4)
    # the complete listing no longer has the withdrawn dataset and has the new ones
    everything = {d for _, g in pages(client, "nt", size=50) for d in listed(g)}
    assert iri(5) not in everything and {iri(50), iri(100)} <= everything
    assert len(everything) == 24


def test_paging_while_datasets_are_written(runtime: Runtime, client: Any,
                                           world: dict[str, Any]) -> None:
    """A harvester paging (2 per page, slowly) while a provider adds, edits and withdraws
    datasets: nothing that was there throughout is skipped, nothing is listed twice."""
    tokens, ds = world["tokens"], world["datasets"]
    withdrawn = {1, 9}
    done = threading.Event()
    errors: list[str] = []
    app = client.application

    def writer() -> None:
        other = app.test_client()
        try:
            for n in range(200, 230):
                org = "org-a" if n % 2 else "org-b"
                r = other.post(f"/api/v1/datasets?organisation_id={org}&status=published",
                               data=turtle(n), headers={**auth(tokens[org]),
                                                        "Content-Type": "text/turtle"})
                if r.status_code not in (200, 201):
                    errors.append(str(r.json))
                if n % 5 == 0:  # edit an existing dataset: its place must not move
                    i = (n // 5) % 23
                    org_i = "org-a" if i % 2 else "org-b"
                    other.post(f"/api/v1/datasets?organisation_id={org_i}&status=published",
                               data=turtle(i, version=f"3.{n}"),
                               headers={**auth(tokens[org_i]), "Content-Type": "text/turtle"})
                if n == 210:
                    for i in withdrawn:
                        org_i = "org-a" if i % 2 else "org-b"
                        other.delete(f"/api/v1/datasets/{ds[i]}", headers=auth(tokens[org_i]))
                time.sleep(0.01)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[URIRef] = []
    rounds = 0
    url: str | None = "/dcat/catalog?format=nt&page_size=2"
    while url:
        r = client.get(url)
        assert r.status_code == 200
        graph = parse_rdf(r.data, content_type="application/n-triples")
        seen.extend(listed(graph))
        nxt = next(graph.objects(None, HYDRA.next), None)
        url = str(nxt).replace("http://127.0.0.1:8080", "") if nxt else None
        rounds += 1
        time.sleep(0.02)
    thread.join()
    assert not errors
    assert done.is_set() and rounds > 12
    assert len(seen) == len(set(seen)), "a dataset was listed twice"
    throughout = {iri(i) for i in range(23)} - {iri(i) for i in withdrawn}
    assert throughout <= set(seen), f"skipped: {sorted(throughout - set(seen))}"
    # and a fresh pass afterwards has exactly the final catalogue
    final = [d for _, g in pages(client, "nt", size=9) for d in listed(g)]
    assert len(final) == len(set(final)) == 23 - len(withdrawn) + 30


def test_cli_dump_is_one_document_with_every_published_dataset(
        config: Any, client: Any, world: dict[str, Any], tmp_path: Any) -> None:
    from click.testing import CliRunner

    from catalogue.cli import main

    env = {"CATALOGUE_DATABASE_URL": config.database_url, "CATALOGUE_DATA_DIR": config.data_dir,
           "CATALOGUE_SECRET_KEY": config.secret_key, "CATALOGUE_ENV": "test"}
    for fmt, media in FORMATS.items():
        out = tmp_path / f"catalogue.{fmt}"
        result = CliRunner().invoke(main, ["export", "dcat", "--format", fmt, "-o", str(out)],
                                    env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        graph = parse_rdf(out.read_bytes(), content_type=media)
        assert set(listed(graph)) == {iri(i) for i in range(23)}, fmt
        assert len(list(graph.subjects(RDF.type, DCAT.Catalog))) == 1
        assert len(list(graph.subjects(RDF.type, DCAT.CatalogRecord))) == 23
    bad = CliRunner().invoke(main, ["export", "dcat", "--format", "pdf"], env=env)
    assert bad.exit_code == 2 and "format" in bad.output


def test_awkward_text_stays_well_formed_in_every_format(client: Any,
                                                        world: dict[str, Any]) -> None:
    title = 'Tumours & "margins" <T2> \u0001\u0008 \ufffe end'
    r = client.post("/api/v1/datasets", json={
        "identifier": "awkward", "organisation_id": "org-a", "status": "published",
        "title": {"en": title}, "description": {"en": "a\nb\tc ]]> </rdf:RDF>"}},
        headers=auth(world["tokens"]["org-a"]))
    assert r.status_code == 201, r.json
    for fmt, media in FORMATS.items():
        body = client.get(f"/dcat/datasets/{r.json['id']}?format={fmt}")
        assert body.status_code == 200
        graph = parse_rdf(body.data, content_type=media)
        titles = {str(t) for t in graph.objects(None, DCT.title)}
        kept = title if fmt != "rdfxml" else 'Tumours & "margins" <T2>   end'
        assert kept in titles, (fmt, titles)
        descriptions = {str(t) for t in graph.objects(None, DCT.description)}
        assert "a\nb\tc ]]> </rdf:RDF>" in descriptions


def _total(client: Any, size: int = 7) -> int:
    r = client.get(f"/dcat/catalog?format=nt&page_size={size}")
    assert r.status_code == 200
    graph = parse_rdf(r.data, content_type=r.mimetype)
    return int(next(graph.objects(None, HYDRA.totalItems)))


def test_totals_follow_every_change_and_a_late_commit_within_the_ttl(
        runtime: Runtime, client: Any, world: dict[str, Any]) -> None:
    """A listing's total and last page are computed once per listing state (not per page);
    a write moves the state, and a commit that lands under an unchanged last-change stamp (a
    transaction that started earlier) is counted once the short cache lifetime has passed."""
    assert _total(client) == 23
    post(client, world["tokens"]["org-a"], "org-a", 200)  # an ordinary write: seen at once
    assert _total(client) == 24
    # a transaction that started before the last write and commits after it: its updated_at
    # is older than the catalogue's last change, so the cache key does not move
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE datasets SET status = 'withdrawn', updated_at = updated_at - "
                     "interval '1 hour' WHERE id = %s", (world["datasets"][3],))
    runtime.export.SHAPE_TTL = 0.3  # type: ignore[misc]
    time.sleep(0.35)
    assert _total(client) == 23


def test_stored_fragments_are_packed_and_a_bad_one_is_rendered_again(
        runtime: Runtime, client: Any, world: dict[str, Any]) -> None:
    from catalogue.store.exports import unpack

    url = "/dcat/catalog?format=nt&page_size=50"
    first = client.get(url)
    assert first.status_code == 200
    # one buffer with its length, not chunked
    assert first.headers["Content-Length"] == str(len(first.data))
    with runtime.database.transaction() as conn:
        rows = conn.execute(
            "SELECT dataset_id::text AS id, body, pg_column_compression(body) AS toast "
            "FROM dataset_exports WHERE format = 'nt' ORDER BY dataset_id").fetchall()
    assert len(rows) == len(world["datasets"])
    for row in rows:
        body = bytes(row["body"])
        assert body[:1] == b"\x01" and row["toast"] is None  # ours, not pglz on top
        plain = unpack(body)
        assert plain is not None and len(plain) > len(body)
        assert plain in first.data  # the page is made of the stored fragments

    def versions() -> dict[str, str]:
        with runtime.database.transaction() as conn:
            return {r["id"] + r["format"]: r["v"] for r in conn.execute(
                "SELECT dataset_id::text AS id, format, xmin::text AS v FROM dataset_exports")}

    # a warm page is made of what is stored: nothing is rendered or written again
    stored = versions()
    assert client.get(url).data == first.data
    assert versions() == stored

    corrupt, foreign = rows[0]["id"], rows[1]["id"]
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE dataset_exports SET body = '\\x01deadbeef'::bytea "
                     "WHERE dataset_id = %s AND format = 'nt'", (corrupt,))
        conn.execute("UPDATE dataset_exports SET body = convert_to('<a> <b> <c> .', 'UTF8') "
                     "WHERE dataset_id = %s AND format = 'nt'", (foreign,))
    runtime.export.pages.clear()  # the page itself was stored: assemble it again
    again = client.get(url)
    assert again.status_code == 200
    assert isomorphic(parse_rdf(again.data, content_type="application/n-triples"),
                      parse_rdf(first.data, content_type="application/n-triples"))
    with runtime.database.transaction() as conn:
        fixed = {r["id"]: bytes(r["body"]) for r in conn.execute(
            "SELECT dataset_id::text AS id, body FROM dataset_exports WHERE format = 'nt' "
            "AND dataset_id = ANY(%s::uuid[])", ([corrupt, foreign],))}
    assert set(fixed) == {corrupt, foreign}
    for body in fixed.values():  # rendered and stored again, packed
        plain = unpack(body)
        assert plain is not None and plain in again.data


@pytest.mark.parametrize("stored", ["nothing", "fragments", "page"])
def test_a_page_describes_its_datasets_as_listed_even_if_one_changes_before_its_body(
        runtime: Runtime, client: Any, world: dict[str, Any], stored: str) -> None:
    """A page's listing and the descriptions in its body come from one snapshot: a dataset
    withdrawn or updated after the listing was read (while the answer is being made) is still
    described on that page as listed, not as a deleted record next to a live listing entry.
    The same whether the body is rendered, assembled from stored fragments, or stored whole
    (and evicted meanwhile: the open file is what is sent)."""
    from catalogue.store.exports import Selection

    service = runtime.export
    assert service.pages is not None
    if stored != "nothing":
        assert client.get("/dcat/catalog?format=nt&page_size=50").status_code == 200
    if stored == "fragments":
        service.pages.clear()
    page = service.page("nt", Selection(), None, 50,
                        lambda after: "http://127.0.0.1:8080/dcat/catalog?format=nt&page_size=50")
    assert bool(page.cached) == (stored == "page")
    service.pages.clear()
    gone, updated = world["datasets"][3], world["datasets"][4]
    assert client.delete(f"/api/v1/datasets/{gone}",
                         headers=auth(world["tokens"]["org-a"])).status_code == 200
    org_b = world["tokens"]["org-b"]
    changed = client.put(f"/api/v1/datasets/{updated}?organisation_id=org-b&status=published",
                         data=turtle(4, version="2.0.0"),
                         headers={**auth(org_b), "Content-Type": "text/turtle"})
    assert changed.status_code == 200, changed.json
    graph = parse_rdf(content(page.body()), content_type="application/n-triples")
    assert set(listed(graph)) == {iri(i) for i in range(23)}
    for ds in listed(graph):
        assert (ds, RDF.type, DCAT.Dataset) in graph
        records = list(graph.subjects(FOAF.primaryTopic, ds))
        assert len(records) == 1 and graph.value(records[0], ADMS.status) == CHANGED + "created"
    assert graph.value(iri(4), DCAT.version) == Literal("1.0.0")  # as listed, not as written
    # the next page (a new snapshot) has both changes
    after = pages(client, size=50)[0][1]
    assert iri(3) not in set(listed(after))
    assert after.value(iri(4), DCAT.version) == Literal("2.0.0")


def _view(graph: Graph) -> str:
    catalog = URIRef("http://127.0.0.1:8080/dcat/catalog")
    return str(graph.value(catalog, HYDRA.view))


DATASEX = URIRef(str(DCAT) + "Datasex")


def _mark(cache: Any) -> int:
    """Mark every stored run: its datasets typed dcat:Datasex (same length: the header stays
    valid), to tell descriptions sent from stored runs from those assembled afresh."""
    files = list(cache.folder.glob("*" + cache.SUFFIX))
    for path in files:
        path.write_bytes(path.read_bytes().replace(b"dcat#Dataset>", b"dcat#Datasex>"))
    return len(files)


def _from_stored(graph: Graph) -> set[Any]:
    return set(graph.subjects(RDF.type, DATASEX))


def test_a_stored_page_is_served_until_anything_it_shows_changes(
        runtime: Runtime, client: Any, world: dict[str, Any]) -> None:
    """A page is assembled once; its runs (listing and descriptions) are stored and sent again
    while their datasets do not change. Its opening (the catalogue's totals, last change and
    the Hydra links, which follow the request's own parameters) is always current."""
    cache = runtime.export.pages
    assert cache is not None
    # runs of three (at RUN 64, 23 datasets are most likely one run)
    by_id = sorted(world["datasets"].values())
    ends = {dataset_id for n, dataset_id in enumerate(by_id) if n % 3 == 2}
    runtime.export.run_ends = ends.__contains__  # type: ignore[method-assign]
    catalog = URIRef("http://127.0.0.1:8080/dcat/catalog")
    url = "/dcat/catalog?format=nt&page_size=7"
    first = client.get(url)
    assert first.status_code == 200
    files = list(cache.folder.glob("*" + cache.SUFFIX))
    assert files
    stored = [FileCache.body_of(path.read_bytes()) for path in files]
    # whole runs: the page's datasets, and those of its edge runs beyond it
    assert sum(map(len, stored)) > 0.9 * len(first.data)
    assert _mark(cache) == len(files)
    again = client.get(url)
    graph = parse_rdf(again.data, content_type="application/n-triples")
    assert _from_stored(graph) == set(listed(graph)) and len(listed(graph)) == 7
    assert len(again.data) == len(first.data)
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Content-Length"] == str(len(again.data))
    assert again.headers["Link"] == first.headers["Link"]
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304

    # the same page asked for with other parameters: the same stored runs, its own links
    for other, headers, view in (
            ("/dcat/catalog?format=ntriples&page_size=7", {}, "format=ntriples&page_size=7"),
            ("/dcat/catalog?page_size=7", {"Accept": "application/n-triples"}, "?page_size=7")):
        r = client.get(other, headers=headers)
        graph = parse_rdf(r.data, content_type="application/n-triples")
        assert _from_stored(graph) == set(listed(graph))
        assert _view(graph).endswith(view)
    assert len(list(cache.folder.glob("*" + cache.SUFFIX))) == len(files)

    # a dataset on a later page changes: this page's runs are still the stored ones, its
    # opening says the catalogue changed
    last_page = pages(client, size=7)[-1][1]
    later = sorted(listed(last_page))[-1]
    number = int(str(later).rsplit("-", 1)[1])
    org = "org-a" if number % 2 else "org-b"
    r = client.put(f"/api/v1/datasets/{world['datasets'][number]}?organisation_id={org}"
                   "&status=published", data=turtle(number, version="3.0.0"),
                   headers={**auth(world["tokens"][org]), "Content-Type": "text/turtle"})
    assert r.status_code == 200, r.json
    time.sleep(1.1)  # dct:modified has seconds: let the update show in it
    r = client.put(f"/api/v1/datasets/{world['datasets'][number]}?organisation_id={org}"
                   "&status=published", data=turtle(number, version="3.0.1"),
                   headers={**auth(world["tokens"][org]), "Content-Type": "text/turtle"})
    assert r.status_code == 200, r.json
    fresh = client.get(url)
    assert fresh.headers["ETag"] != first.headers["ETag"]
    graph = parse_rdf(fresh.data, content_type="application/n-triples")
    before = parse_rdf(first.data, content_type="application/n-triples")
    assert graph.value(catalog, DCT.modified) > before.value(catalog, DCT.modified)
    assert set(listed(graph)) == set(listed(before)) == _from_stored(graph)

    # a dataset on this page is withdrawn: it leaves the page, and the runs it shifted are
    # assembled again; every listed dataset is described once
    gone = sorted(listed(graph))[0]
    number = int(str(gone).rsplit("-", 1)[1])
    org = "org-a" if number % 2 else "org-b"
    assert client.delete(f"/api/v1/datasets/{world['datasets'][number]}",
                         headers=auth(world["tokens"][org])).status_code == 200
    graph = parse_rdf(client.get(url).data, content_type="application/n-triples")
    assert gone not in set(listed(graph)) and len(listed(graph)) == 7
    assert _from_stored(graph) != set(listed(graph))  # not all of it from before
    assert graph.value(catalog, HYDRA.totalItems) == Literal(22)
    for ds in listed(graph):
        assert len(set(graph.objects(ds, RDF.type)) & {DCAT.Dataset, DATASEX}) == 1


def test_runs_survive_a_shift_of_the_pages(runtime: Runtime, client: Any,
                                           world: dict[str, Any]) -> None:
    """Runs are cut by dataset id, not by position on the page, and stored whole: a dataset
    withdrawn near the start shifts every later page by one, yet only the run it was in is
    assembled again; the pages' edges are byte ranges of the stored runs."""
    service = runtime.export
    assert service.pages is not None
    by_id = sorted(world["datasets"].items(), key=lambda item: item[1])
    ends = {dataset_id for n, (_, dataset_id) in enumerate(by_id) if n % 3 == 2}
    service.run_ends = ends.__contains__  # type: ignore[method-assign]
    # pages of 8: [0 1 2|3 4 5|6 7] [8|9 10 11|12 13 14|15] [16 17|18 19 20|21 22]
    assert len({d for _, g in pages(client, size=8) for d in listed(g)}) == 23
    _mark(service.pages)
    number, dataset_id = by_id[1]
    org = "org-a" if number % 2 else "org-b"
    assert client.delete(f"/api/v1/datasets/{dataset_id}",
                         headers=auth(world["tokens"][org])).status_code == 200
    # now: [0 2|3 4 5|6 7 8] [9 10 11|12 13 14|15 16] [17|18 19 20|21 22]
    got = pages(client, size=8)
    seen = [d for _, g in got for d in listed(g)]
    assert len(seen) == len(set(seen)) == 22 and iri(number) not in seen
    stored = set().union(*(_from_stored(g) for _, g in got))
    new = {iri(n) for n, _ in (by_id[0], by_id[2])}  # the run [0 1 2] became [0 2]
    assert stored == set(seen) - new
    # another page size cuts the runs elsewhere: every dataset from the stored runs
    other = pages(client, size=5)
    assert set().union(*(_from_stored(g) for _, g in other)) == set(seen) - new
    for _, graph in got:
        for ds in listed(graph):
            assert len(set(graph.objects(ds, RDF.type)) & {DCAT.Dataset, DATASEX}) == 1


def test_a_damaged_stored_page_is_assembled_again(runtime: Runtime, client: Any,
                                                  world: dict[str, Any]) -> None:
    cache = runtime.export.pages
    assert cache is not None
    url = "/dcat/catalog?format=turtle&page_size=10"
    first = client.get(url).data
    paths = list(cache.folder.glob("*" + cache.SUFFIX))
    for path in paths:
        with open(path, "r+b") as f:
            f.truncate(cache.HEADER + 10)  # e.g. the disk filled up under another writer
    again = client.get(url)
    assert again.status_code == 200 and again.data == first
    for path in paths:  # stored whole again
        assert len(FileCache.body_of(path.read_bytes())) > 100
    for path in paths:  # offsets that do not fit the body (the header itself is right)
        raw = path.read_bytes()
        path.write_bytes(raw[:-8] + bytes(8))
    assert client.get(url).data == first
    for path in paths:
        raw = path.read_bytes()
        assert int.from_bytes(raw[-8:], "little") == len(FileCache.body_of(raw))


def test_pages_over_http_from_the_stored_file(runtime: Runtime, world: dict[str, Any]) -> None:
    """Through the real server: a stored page goes out as a file (``wsgi.file_wrapper``) with
    its length, on a kept-alive connection that then carries further requests."""
    import http.client

    from catalogue.testing.app_server import serve

    path = "/dcat/catalog?format=jsonld&page_size=10"
    with serve(runtime) as base:
        conn = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
        answers = []
        for method, headers in (("GET", {}), ("GET", {}), ("HEAD", {}), ("GET", {}),
                                ("GET", {"If-None-Match": "*"}), ("GET", {})):
            conn.request(method, path, headers=headers)
            r = conn.getresponse()
            answers.append((r.status, r.getheader("Content-Length"), r.getheader("ETag"),
                            r.read()))
        conn.close()
    assert [a[0] for a in answers] == [200, 200, 200, 200, 304, 200]
    bodies = [a[3] for a in answers if a[0] == 200]
    body = bodies[0]
    assert bodies == [body, body, b"", body, body]
    assert {a[1] for a in answers if a[0] == 200} == {str(len(body))}
    assert len({a[2] for a in answers}) == 1
    graph = parse_rdf(body, content_type="application/ld+json")
    assert len(listed(graph)) == 10


def test_pages_without_the_page_cache(tmp_path: Any, db_url: str, world: dict[str, Any]) -> None:
    """``CATALOGUE_EXPORT_PAGE_CACHE_MB=0``: every page is assembled, nothing is written."""
    from catalogue.api.app import create_app
    from tests.conftest import make_config

    config = make_config(tmp_path / "off", db_url, export_page_cache_mb=0)
    off = Runtime(config).start()
    try:
        assert off.export.pages is None
        client = create_app(runtime=off, background_indexer=False).test_client()
        got = pages(client, "turtle", size=10)
        assert [len(listed(graph)) for _, graph in got] == [10, 10, 3]
        assert client.get("/dcat/catalog?format=turtle&page_size=10").data == got[0][0].data
        assert not (tmp_path / "off" / "data" / "export-pages").exists()
    finally:
        off.close()


def test_a_providers_listing_has_exactly_its_datasets_described(
        client: Any, world: dict[str, Any]) -> None:
    """``?organisation=``: the fragments of a filtered listing are read by id (the complete
    listing reads a range of ids); each listed dataset is described, first assembled and then
    from the stored page."""
    for org, mine in (("org-a", {iri(i) for i in range(23) if i % 2}),
                      ("org-b", {iri(i) for i in range(23) if not i % 2})):
        for _ in range(2):
            got = pages(client, "nt", size=5, query=f"&organisation={org}")
            seen = [d for _, graph in got for d in listed(graph)]
            assert len(seen) == len(set(seen)) and set(seen) == mine
            for _, graph in got:
                for ds in listed(graph):
                    assert (ds, DCT.title, None) in graph


@pytest.mark.parametrize("peek,limit", [(2, 3), (2, 8), (50, 50)])
def test_pages_are_whole_however_far_the_edge_runs_reach(
        runtime: Runtime, client: Any, world: dict[str, Any], peek: int, limit: int) -> None:
    """The rows beyond a page's edges are read a few first, then up to a limit: a run longer
    than that is keyed by what was read. Every page still lists and describes exactly its
    datasets, assembled and then from stored runs, at several page sizes."""
    service = runtime.export
    by_id = sorted(world["datasets"].values())
    ends = {dataset_id for n, dataset_id in enumerate(by_id) if n % 6 == 5}
    service.run_ends = ends.__contains__  # type: ignore[method-assign]
    service.RUN_PEEK, service.RUN_LIMIT = peek, limit  # type: ignore[misc]
    everything = {iri(i) for i in range(23)}
    for size in (4, 7, 4, 23, 7):
        got = pages(client, size=size)
        seen = [d for _, graph in got for d in listed(graph)]
        assert len(seen) == len(set(seen)) and set(seen) == everything, size
        for _, graph in got:
            for ds in listed(graph):
                assert (ds, RDF.type, DCAT.Dataset) in graph
                assert len(list(graph.subjects(FOAF.primaryTopic, ds))) == 1
