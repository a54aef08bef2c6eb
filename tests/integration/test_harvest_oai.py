"""Harvesting another catalogue completely and incrementally: OAI-PMH ``ListRecords`` with
resumption tokens, and incremental DCAT pages that announce deletions, from real HTTP stand-ins
into PostgreSQL.

The stand-ins serve the generated EUCAIM-DCAT-AP descriptions (the ones the Hydra tests use, so
records pass SHACL validation): as RDF/XML inside OAI-PMH records, or as Turtle pages.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import pytest
from rdflib import Graph

from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.profiles import get_profile
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.store.datasets import DatasetRepository
from catalogue.testing.dcat_generator import record
from catalogue.testing.dcat_server import BASE, PREFIXES
from catalogue.testing.http_server import LocalHTTPServer, Reply, send_reply

OAI_PATH = "/oai"
LIST = "?verb=ListRecords&metadataPrefix=dcat_ap"
MORE_PREFIXES = "@prefix adms: <http://www.w3.org/ns/adms#> .\n"
CHANGETYPE = "http://purl.org/adms/changetype/"


def iri(base: str, i: int) -> str:
    return f"{base}/dataset/gen-{i:06d}"


def _record_ttl(base: str, i: int, status: str) -> str:
    return (
        f"<{base}/dcat/records/{i}> a dcat:CatalogRecord ;\n"
        f"  foaf:primaryTopic <{iri(base, i)}> ;\n"
        f"  adms:status <{CHANGETYPE}{status}> ;\n"
        '  dct:modified "2026-11-28T10:00:00Z"^^xsd:dateTime .\n'
    )


def dataset_ttl(base: str, i: int, version: str = "1.0.0") -> str:
    """Dataset i's description and its catalogue record (``created``), as the export has it."""
    return record(i, version=version)[1].replace(BASE, base) + _record_ttl(base, i, "created")


def deleted_ttl(base: str, i: int, stub: bool = True) -> str:
    """A withdrawn dataset as an incremental page announces it: its record, and a stub."""
    return _record_ttl(base, i, "deleted") + (
        f"<{iri(base, i)}> a dcat:Resource .\n" if stub else ""
    )


@lru_cache(maxsize=64)
def dataset_rdfxml(base: str, i: int, version: str = "1.0.0") -> str:
    graph = Graph().parse(
        data=PREFIXES + MORE_PREFIXES + dataset_ttl(base, i, version), format="turtle"
    )
    return re.sub(r"\A<\?xml[^>]*\?>\s*", "", graph.serialize(format="xml"))


# -- an OAI-PMH provider --------------------------------------------------------------------------


def live(base: str, i: int, version: str = "1.0.0") -> str:
    return (
        f"<record><header><identifier>{iri(base, i)}</identifier>"
        "<datestamp>2026-11-28T10:00:00Z</datestamp><setSpec>org:a</setSpec></header>"
        f"<metadata>{dataset_rdfxml(base, i, version)}</metadata></record>"
    )


def gone(base: str, i: int) -> str:
    return (
        f'<record><header status="deleted"><identifier>{iri(base, i)}</identifier>'
        "<datestamp>2026-11-28T10:00:00Z</datestamp><setSpec>org:a</setSpec></header>"
        "</record>"
    )


def broken(base: str, i: int) -> str:
    """Well-formed XML, but not RDF/XML (rdf:about and rdf:ID on one node)."""
    return live(base, i).replace(
        f'rdf:about="{iri(base, i)}"', f'rdf:about="{iri(base, i)}" rdf:ID="x{i}"', 1
    )


def oai_response(base: str, inner: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OAI-PMH xmlns="http://www.openarchives.org/OAI/2.0/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation='
        '"http://www.openarchives.org/OAI/2.0/ http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd">'
        "<responseDate>2026-11-28T10:00:00Z</responseDate>"
        f'<request verb="ListRecords" metadataPrefix="dcat_ap">{base}{OAI_PATH}</request>'
        f"{inner}</OAI-PMH>"
    ).encode()


def oai_error(base: str, code: str, text: str = "") -> bytes:
    return oai_response(base, f'<error code="{code}">{text}</error>')


@dataclass
class OaiFeed:
    """Pages of ``<record>`` elements chained by tokens ``t1``, ``t2``...; ``raw[n]`` replaces
    page n's response (errors, hostile documents)."""

    base: str
    pages: list[list[str]] = field(default_factory=list)
    raw: dict[int, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def body(self, token: str | None) -> bytes:
        with self.lock:
            if token is None:
                index = 0
            elif re.fullmatch(r"t[0-9]+", token) and 0 < int(token[1:]) < len(self.pages):
                index = int(token[1:])
            else:
                return oai_error(self.base, "badResumptionToken", "unknown token")
            if index in self.raw:
                return self.raw[index]
            size = sum(len(p) for p in self.pages)
            cursor = sum(len(p) for p in self.pages[:index])
            nxt = f"t{index + 1}" if index + 1 < len(self.pages) else ""
            rt = (
                (
                    f'<resumptionToken completeListSize="{size}" cursor="{cursor}">{nxt}'
                    "</resumptionToken>"
                )
                if len(self.pages) > 1
                else ""
            )
            return oai_response(
                self.base, f"<ListRecords>{''.join(self.pages[index])}{rt}</ListRecords>"
            )

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        token = parse_qs(urlsplit(request.path).query).get("resumptionToken", [None])[0]
        send_reply(
            request, Reply(200, self.body(token), {"Content-Type": "text/xml; charset=utf-8"})
        )


# -- a DCAT endpoint with incremental pages -------------------------------------------------------


@dataclass
class TurtleFeed:
    """Hydra pages ``/catalog?page=N`` of Turtle chunks; ``hydra:next`` keeps the query."""

    base: str
    pages: list[list[str]] = field(default_factory=list)

    def body(self, page: int, since: str | None) -> bytes:
        suffix = f"&modified_since={quote(since, safe='')}" if since else ""
        chunks = self.pages[page - 1]
        view = f"<{self.base}/catalog?page={page}{suffix}> a hydra:PartialCollectionView"
        if page < len(self.pages):
            view += f" ;\n  hydra:next <{self.base}/catalog?page={page + 1}{suffix}>"
        head = (
            f"<{self.base}/catalog> a dcat:Catalog, hydra:Collection ;\n"
            f'  dct:title "Other node"@en ;\n  hydra:view <{self.base}/catalog?page={page}'
            f"{suffix}> .\n{view} .\n"
        )
        return (PREFIXES + MORE_PREFIXES + head + "\n".join(chunks)).encode()

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        query = parse_qs(urlsplit(request.path).query)
        page = int(query.get("page", ["1"])[0])
        since = query.get("modified_since", [None])[0]
        send_reply(
            request,
            Reply(200, self.body(page, since), {"Content-Type": "text/turtle; charset=utf-8"}),
        )


# -- fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture
def orgs(runtime: Runtime) -> Runtime:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    runtime.identities.create_organisation(SYSTEM, Organisation("org-b", "B", "DE"))
    return runtime


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


@pytest.fixture
def oai_feed(server: LocalHTTPServer) -> OaiFeed:
    feed = OaiFeed(server.url("").rstrip("/"))
    server.route(OAI_PATH, feed.handle)
    return feed


@pytest.fixture
def ttl_feed(server: LocalHTTPServer) -> TurtleFeed:
    feed = TurtleFeed(server.url("").rstrip("/"))
    server.route("/catalog", feed.handle)
    return feed


def _harvest(
    rt: Runtime,
    server: LocalHTTPServer,
    path: str = OAI_PATH + LIST,
    org: str = "org-a",
    **kwargs: Any,
) -> Any:
    return rt.harvest.run_url(
        SYSTEM, "dcat", server.url(path), org, allowed_origins=frozenset({server.origin}), **kwargs
    )


def _incremental(
    rt: Runtime, server: LocalHTTPServer, path: str = OAI_PATH + LIST, org: str = "org-a"
) -> Any:
    return _harvest(rt, server, path, org, config={"incremental": True})


def _rows(rt: Runtime) -> dict[tuple[str, str], dict[str, Any]]:
    with rt.database.transaction() as conn:
        rows = conn.execute(
            "SELECT id, organisation_id, identifier, iri, status, version, withdrawn_at, "
            "last_seen_run FROM datasets"
        ).fetchall()
    return {(r["organisation_id"], r["identifier"]): r for r in rows}


def _status(rt: Runtime, org: str = "org-a") -> dict[str, str]:
    return {ident: r["status"] for (o, ident), r in _rows(rt).items() if o == org}


def _queries(server: LocalHTTPServer, path: str = OAI_PATH) -> list[dict[str, str]]:
    return [dict(parse_qsl(urlsplit(r.path).query)) for r in server.requests_for(path)]


def _errors(report: Any) -> list[dict[str, Any]]:
    return [e for e in report.errors if e["severity"] == "error"]


# -- OAI-PMH --------------------------------------------------------------------------------------


def test_a_list_in_three_responses_lands_every_dataset_then_syncs(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    oai_feed.pages = [
        [live(base, 0), live(base, 1)],
        [live(base, 2), live(base, 3)],
        [live(base, 4)],
    ]
    report = _harvest(orgs, server)
    assert report.status == "completed" and report.complete, report.errors
    assert report.counts["seen"] == report.counts["created"] == 5
    assert _errors(report) == []
    assert not any("no dcat:Dataset" in e["message"] for e in report.errors)
    assert _queries(server) == [
        {"verb": "ListRecords", "metadataPrefix": "dcat_ap"},
        {"verb": "ListRecords", "resumptionToken": "t1"},  # only the verb and the token
        {"verb": "ListRecords", "resumptionToken": "t2"},
    ]
    # what landed is what the profile reads from the same description in Turtle
    profile = get_profile()
    for i in (0, 3, 4):
        graph = profile.canonicalise(
            parse_rdf(
                (PREFIXES + record(i)[1].replace(BASE, base)).encode(), content_type="text/turtle"
            )
        )
        expected = profile.parse(graph, profile.dataset_nodes(graph)[0], "org-a")
        with orgs.database.transaction() as conn:
            stored = DatasetRepository(conn).find("org-a", f"gen-{i:06d}")
        assert stored is not None and stored.status.value == "published"
        assert stored.iri == iri(base, i)
        for name in (
            "title",
            "description",
            "keywords",
            "conditions",
            "modalities",
            "body_parts",
            "countries",
            "access_rights",
            "number_of_individuals",
            "number_of_studies",
            "min_age",
            "max_age",
            "issued",
            "distributions",
        ):
            assert getattr(stored, name) == getattr(expected, name), name
        assert stored.distributions
    before = _rows(orgs)

    again = _harvest(orgs, server)
    assert again.counts["unchanged"] == 5
    assert again.counts["created"] == again.counts["updated"] == again.counts["withdrawn"] == 0
    assert {k: r["version"] for k, r in _rows(orgs).items()} == {
        k: r["version"] for k, r in before.items()
    }

    # a complete, non-incremental run withdraws what the list no longer has: OAI pages mark
    # what they saw, as Hydra pages do
    oai_feed.pages = [[live(base, 0), live(base, 1)], [live(base, 2), live(base, 3)]]
    synced = _harvest(orgs, server)
    assert synced.complete and synced.counts["withdrawn"] == 1
    assert synced.counts["unchanged"] == 4
    assert _status(orgs) == {
        "gen-000000": "published",
        "gen-000001": "published",
        "gen-000002": "published",
        "gen-000003": "published",
        "gen-000004": "withdrawn",
    }


def test_a_deleted_header_withdraws_that_dataset_of_this_organisation_only(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    oai_feed.pages = [[live(base, 0), live(base, 1)], [live(base, 2)]]
    assert _harvest(orgs, server, org="org-b").counts["created"] == 3
    assert _incremental(orgs, server).counts["created"] == 3  # the first run is a full one
    before = _rows(orgs)

    # what changed since: dataset 1 withdrawn at the source (its record has no metadata), and
    # a deletion of a dataset this organisation never had
    oai_feed.pages = [[gone(base, 1)], [gone(base, 77)]]
    report = _incremental(orgs, server)
    assert report.status == "completed" and report.complete, report.errors
    assert report.counts["withdrawn"] == 1
    assert report.counts["seen"] == report.counts["created"] == report.counts["failed"] == 0
    assert not any("no dcat:Dataset" in e["message"] for e in report.errors)
    after = _rows(orgs)
    gone_row = after[("org-a", "gen-000001")]
    assert gone_row["status"] == "withdrawn" and gone_row["withdrawn_at"] is not None
    assert gone_row["version"] == before[("org-a", "gen-000001")]["version"] + 1
    assert after[("org-b", "gen-000001")]["status"] == "published"  # same IRI, other org
    assert after[("org-b", "gen-000001")]["version"] == before[("org-b", "gen-000001")]["version"]
    assert _status(orgs) == {
        "gen-000000": "published",
        "gen-000001": "withdrawn",
        "gen-000002": "published",
    }
    with orgs.database.transaction() as conn:
        queued = {
            r["entity_id"]
            for r in conn.execute(
                "SELECT entity_id FROM outbox WHERE entity = 'dataset'"
            ).fetchall()
        }
    assert str(gone_row["id"]) in queued  # the search index hears of it


def test_incremental_runs_ask_from_the_previous_run_and_keep_the_set(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    path = OAI_PATH + LIST + "&set=org%3Aa"
    oai_feed.pages = [[live(base, 0), live(base, 1)], [live(base, 2)]]
    assert _incremental(orgs, server, path).counts["created"] == 3
    assert "from" not in _queries(server)[0]
    server.requests.clear()
    oai_feed.pages = [[live(base, 1, version="2.0.0")]]  # the changes only
    delta = _incremental(orgs, server, path)
    assert delta.status == "completed" and delta.complete
    assert delta.counts["updated"] == 1 and delta.counts["withdrawn"] == 0
    (query,) = _queries(server)
    assert query["set"] == "org:a" and query["metadataPrefix"] == "dcat_ap"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", query["from"]), query
    assert set(_status(orgs).values()) == {"published"}  # an incremental list never syncs


def test_no_records_match_is_an_empty_complete_list(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    oai_feed.raw[0] = oai_error(base, "noRecordsMatch", "No records match the request.")
    empty = _harvest(orgs, server)
    assert empty.status == "completed" and empty.complete
    assert sum(empty.counts.values()) == 0 and empty.errors == []

    oai_feed.raw.clear()
    oai_feed.pages = [[live(base, 0), live(base, 1)]]
    assert _incremental(orgs, server).counts["created"] == 2
    oai_feed.raw[0] = oai_error(base, "noRecordsMatch")  # nothing changed since
    quiet = _incremental(orgs, server)
    assert quiet.status == "completed" and quiet.complete and quiet.errors == []
    assert set(_status(orgs).values()) == {"published"}


def test_other_protocol_errors_on_the_first_request_fail_the_run(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    oai_feed.raw[0] = oai_error(oai_feed.base, "cannotDisseminateFormat", "dcat_ap is not served")
    report = _harvest(orgs, server)
    assert report.status == "failed"
    assert "cannotDisseminateFormat" in (report.error or "")
    assert "dcat_ap is not served" in (report.error or "")


def test_a_bad_resumption_token_mid_list_leaves_the_run_incomplete_and_withdraws_nothing(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    oai_feed.pages = [[live(base, 0), live(base, 1)], [live(base, 2)]]
    assert _harvest(orgs, server).counts["created"] == 3
    oai_feed.raw[1] = oai_error(base, "badResumptionToken", "The token has expired.")
    report = _harvest(orgs, server)  # a full run: it would sync deletions if complete
    assert report.status == "completed" and not report.complete
    assert report.counts["unchanged"] == 2 and report.counts["withdrawn"] == 0
    (error,) = _errors(report)
    assert "badResumptionToken" in error["message"] and "expired" in error["message"]
    assert error["location"].startswith(server.url(OAI_PATH))
    assert set(_status(orgs).values()) == {"published"}


def test_a_record_that_is_not_rdf_is_reported_and_the_others_land(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    oai_feed.pages = [[live(base, 0), broken(base, 1)], [live(base, 2)]]
    report = _harvest(orgs, server)
    assert report.status == "completed" and report.complete
    assert report.counts["created"] == 2 and report.counts["failed"] == 1
    assert report.counts["seen"] == 3
    (error,) = _errors(report)
    assert error["record"] == iri(base, 1)
    assert "not valid RDF/XML" in error["message"]
    assert _status(orgs) == {"gen-000000": "published", "gen-000002": "published"}

    oai_feed.pages = [[live(base, 0), live(base, 1)], [live(base, 2)]]
    assert _harvest(orgs, server).counts["created"] == 1
    # broken again: the dataset keeps its last good version; the sync does not withdraw it
    oai_feed.pages = [[live(base, 0), broken(base, 1)], [live(base, 2)]]
    again = _harvest(orgs, server)
    assert again.complete and again.counts["failed"] == 1 and again.counts["withdrawn"] == 0
    assert set(_status(orgs).values()) == {"published"}


def test_documents_with_a_doctype_or_entities_are_refused(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    hostile = oai_response(base, "<ListRecords>&x;</ListRecords>").replace(
        b"\n<OAI-PMH",
        b'\n<!DOCTYPE OAI-PMH [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n<OAI-PMH',
        1,
    )
    oai_feed.raw[0] = hostile
    report = _harvest(orgs, server)
    assert report.status == "failed"
    assert "DOCTYPE" in (report.error or "") and "never processed" in (report.error or "")
    assert _status(orgs) == {}

    oai_feed.raw.clear()
    oai_feed.pages = [[live(base, 0)], [live(base, 1)]]
    oai_feed.raw[1] = hostile  # later in the list: the run stops there, incomplete
    later = _harvest(orgs, server)
    assert later.status == "completed" and not later.complete
    assert later.counts["created"] == 1
    assert any("DOCTYPE" in e["message"] for e in _errors(later))


def test_a_repeated_resumption_token_is_a_paging_loop(
    orgs: Runtime, server: LocalHTTPServer, oai_feed: OaiFeed
) -> None:
    base = oai_feed.base
    oai_feed.pages = [[live(base, 0)], [live(base, 1)]]
    oai_feed.raw[1] = oai_response(
        base, f"<ListRecords>{live(base, 1)}<resumptionToken>t1</resumptionToken></ListRecords>"
    )
    report = _harvest(orgs, server)
    assert report.status == "completed" and not report.complete
    assert report.counts["created"] == 2
    assert any("paging loop" in e["message"] for e in _errors(report))
    assert len(server.requests_for(OAI_PATH)) == 2


# -- DCAT pages that announce deletions ------------------------------------------------------------


def test_an_incremental_dcat_page_with_a_deleted_record_withdraws_the_dataset(
    orgs: Runtime, server: LocalHTTPServer, ttl_feed: TurtleFeed
) -> None:
    base = ttl_feed.base
    ttl_feed.pages = [[dataset_ttl(base, i) for i in range(3)]]
    assert _harvest(orgs, server, "/catalog", org="org-b").counts["created"] == 3
    assert _incremental(orgs, server, "/catalog").counts["created"] == 3
    server.requests.clear()

    # the changes since: dataset 1 withdrawn; the page holds records only
    ttl_feed.pages = [[deleted_ttl(base, 1)]]
    report = _incremental(orgs, server, "/catalog")
    assert report.status == "completed" and report.complete, report.errors
    assert all("modified_since" in q for q in _queries(server, "/catalog"))
    assert report.counts["withdrawn"] == 1 and report.counts["seen"] == 0
    assert report.counts["failed"] == 0
    assert not any("no dcat:Dataset" in e["message"] for e in report.errors)
    assert _status(orgs) == {
        "gen-000000": "published",
        "gen-000001": "withdrawn",
        "gen-000002": "published",
    }
    assert _status(orgs, "org-b") == {f"gen-00000{i}": "published" for i in range(3)}

    # a dry run counts what it would withdraw and writes nothing
    ttl_feed.pages = [[deleted_ttl(base, 2)]]
    dry = _harvest(orgs, server, "/catalog", config={"incremental": True}, dry_run=True)
    assert dry.counts["withdrawn"] == 1
    assert _status(orgs)["gen-000002"] == "published"


def test_a_description_wins_over_a_deletion_of_the_same_dataset_in_one_run(
    orgs: Runtime, server: LocalHTTPServer, ttl_feed: TurtleFeed, oai_feed: OaiFeed
) -> None:
    base = ttl_feed.base
    ttl_feed.pages = [[dataset_ttl(base, i) for i in range(3)]]
    assert _incremental(orgs, server, "/catalog").counts["created"] == 3
    before = _rows(orgs)
    # dataset 0 announced deleted on page 1 and described on page 2; dataset 1 described and
    # announced deleted on page 2; dataset 2 only announced deleted, on page 3 (which a worker
    # process reads)
    ttl_feed.pages = [
        [deleted_ttl(base, 0)],
        [dataset_ttl(base, 0), dataset_ttl(base, 1), deleted_ttl(base, 1, stub=False)],
        [deleted_ttl(base, 2)],
    ]
    report = _incremental(orgs, server, "/catalog")
    assert report.status == "completed" and report.complete, report.errors
    assert report.counts["unchanged"] == 2 and report.counts["withdrawn"] == 1
    assert _status(orgs) == {
        "gen-000000": "published",
        "gen-000001": "published",
        "gen-000002": "withdrawn",
    }
    after = _rows(orgs)
    for ident in ("gen-000000", "gen-000001"):
        assert after[("org-a", ident)]["version"] == before[("org-a", ident)]["version"]

    # the same through OAI-PMH: deleted in the first response, described in the second
    oai_feed.pages = [[live(base, 0), live(base, 1), live(base, 2)]]
    assert _incremental(orgs, server).counts["updated"] == 1  # dataset 2 is back
    oai_feed.pages = [[gone(base, 2), live(base, 0)], [live(base, 2)]]
    oai_run = _incremental(orgs, server)
    assert oai_run.complete and oai_run.counts["withdrawn"] == 0
    assert set(_status(orgs).values()) == {"published"}


def test_oai_sources_pass_the_address_guard(orgs: Runtime) -> None:
    for url in (
        "http://169.254.169.254/oai?verb=ListRecords&metadataPrefix=dcat_ap",
        "http://10.1.2.3/oai?verb=ListRecords&metadataPrefix=dcat_ap",
    ):
        report = orgs.harvest.run_url(SYSTEM, "dcat", url, "org-a")
        assert report.status == "failed"
        assert "refused" in (report.error or ""), report.error
