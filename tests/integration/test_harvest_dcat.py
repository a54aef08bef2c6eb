"""DCAT-AP harvesting end to end: a real HTTP source with Hydra paging, PostgreSQL, the index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from catalogue.cli import CLI_IDENTITY, main
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.store.harvest import HarvestSource
from catalogue.testing.dcat_generator import record
from catalogue.testing.dcat_server import (
    BASE,
    PREFIXES,
    DcatServer,
    DcatSource,
    Record,
    generate_records,
)
from tests.conftest import TEST_SECRET

DATA = Path(__file__).resolve().parents[1] / "data" / "dcat"


@pytest.fixture
def orgs(runtime: Runtime) -> Runtime:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    runtime.identities.create_organisation(SYSTEM, Organisation("org-b", "B", "DE"))
    return runtime


def _harvest(rt: Runtime, server: DcatServer, **kwargs: Any) -> Any:
    return rt.harvest.run_url(
        SYSTEM,
        "dcat",
        server.url,
        kwargs.pop("org", "org-a"),
        allowed_origins=frozenset({server.origin}),
        **kwargs,
    )


def _datasets(rt: Runtime) -> dict[str, dict[str, Any]]:
    with rt.database.transaction() as conn:
        rows = conn.execute(
            "SELECT id, identifier, status, version, updated_at, content_hash FROM datasets"
        ).fetchall()
    return {r["identifier"]: r for r in rows}


def test_repeated_harvests_write_nothing_then_update_then_withdraw(orgs: Runtime) -> None:
    rt = orgs
    source = DcatSource(generate_records(250, record), page_size=100)
    with DcatServer(source) as server:
        first = _harvest(rt, server)
        assert first.status == "completed", first.error
        assert first.counts["seen"] == 250 and first.counts["created"] == 250
        before = _datasets(rt)
        assert len(before) == 250
        assert rt.indexer is not None and rt.indexer.drain() > 0
        for _ in range(2):
            again = _harvest(rt, server)
            assert again.status == "completed"
            assert again.counts["created"] == again.counts["updated"] == 0
            assert again.counts["unchanged"] == 250
            assert again.counts["withdrawn"] == 0
            assert _datasets(rt) == before  # nothing rewritten: same versions and timestamps
            assert rt.indexer.lag()["pending"] == 0
        assert source.not_modified == 6  # runs 2 and 3: three pages each answered 304
        # change one record, remove another
        source.records[7] = Record(*record(7, version="1.1.0"))
        removed = source.records.pop(42)
        changed = _harvest(rt, server)
        assert changed.counts["updated"] == 1 and changed.counts["created"] == 0
        assert changed.counts["withdrawn"] == 1
        after = _datasets(rt)
        assert len(after) == 250  # no duplicates
        assert after["gen-000007"]["id"] == before["gen-000007"]["id"]
        assert after["gen-000007"]["version"] == before["gen-000007"]["version"] + 1
        assert after[removed.identifier]["status"] == "withdrawn"
        # a withdrawn record that comes back is published again, same row
        source.records.insert(42, removed)
        back = _harvest(rt, server)
        assert back.counts["updated"] == 1
        assert _datasets(rt)[removed.identifier]["status"] == "published"
        assert _datasets(rt)[removed.identifier]["id"] == before[removed.identifier]["id"]


def _sharing_identifier(i: int, identifier: str) -> Record:
    """Dataset ``i`` (its own IRI) declaring another dataset's ``dct:identifier``."""
    own, turtle = record(i)
    return Record(own, turtle.replace(f'dct:identifier "{own}"', f'dct:identifier "{identifier}"'))


def _iris(rt: Runtime) -> dict[str, str]:
    with rt.database.transaction() as conn:
        rows = conn.execute("SELECT identifier, iri FROM datasets").fetchall()
    return {r["identifier"]: r["iri"] for r in rows}


def test_two_datasets_of_a_source_with_one_identifier_keep_the_first_and_report_both(
    orgs: Runtime,
) -> None:
    """A copy-pasted dct:identifier: the first dataset read keeps it, the other is a failed
    record naming both, on every run, also when the first one's page is answered 304; nothing
    flips between them, nothing is rewritten."""
    records = generate_records(30, record)
    records[15] = _sharing_identifier(15, "gen-000002")  # page 2, the first one on page 1
    records[23] = _sharing_identifier(23, "gen-000021")  # page 3, the first one on page 3
    source = DcatSource(records, page_size=10)
    with DcatServer(source) as server:
        base = f"http://{server.origin}"
        first = _harvest(orgs, server)
        assert first.status == "completed", first.error
        assert first.counts["seen"] == 30 and first.counts["created"] == 28
        assert first.counts["failed"] == 2
        stored, iris = _datasets(orgs), _iris(orgs)
        assert len(stored) == 28
        assert iris["gen-000002"] == f"{base}/dataset/gen-000002"
        assert iris["gen-000021"] == f"{base}/dataset/gen-000021"
        assert not any(iri.endswith(("gen-000015", "gen-000023")) for iri in iris.values())

        def check(report: Any) -> None:
            errors = {e["record"]: e for e in report.errors if e["property"] == "dct:identifier"}
            assert set(errors) == {"gen-000002", "gen-000021"}
            on_page = errors["gen-000021"]["message"]
            assert f"<{base}/dataset/gen-000023>" in on_page
            assert f"<{base}/dataset/gen-000021> (on this page)" in on_page
            later = errors["gen-000002"]
            assert f"<{base}/dataset/gen-000015>" in later["message"]
            assert f"<{base}/dataset/gen-000002> (on {server.url}" in later["message"]
            assert later["location"].endswith("page=2")

        check(first)
        for _ in range(2):
            source.not_modified = 0
            again = _harvest(orgs, server)
            assert again.counts["created"] == again.counts["updated"] == 0
            assert again.counts["unchanged"] == 28 and again.counts["failed"] == 2
            check(again)  # page 1 answered 304: its identifiers are held from the page state
            assert _datasets(orgs) == stored  # nothing rewritten
            # page 1 answers 304; pages 2 and 3, with a refused record, are read again
            assert source.not_modified == 1


def test_one_dataset_listed_on_two_pages_is_not_a_duplicate(orgs: Runtime) -> None:
    records = generate_records(20, record)
    records.insert(15, records[2])  # a source whose paging shifted while it was read
    with DcatServer(DcatSource(records, page_size=10)) as server:
        report = _harvest(orgs, server)
    assert report.counts["failed"] == 0, report.errors
    assert report.counts["created"] == 20 and report.counts["unchanged"] == 1
    assert len(_datasets(orgs)) == 20


def _status(rt: Runtime, identifier: str) -> str:
    return str(_datasets(rt)[identifier]["status"])


def test_a_dataset_is_kept_by_one_source_of_its_organisation(orgs: Runtime) -> None:
    """Two registered sources of one organisation describing datasets with the same
    identifiers: the source that stored them first keeps them, the other one's records fail
    naming that source, nothing flips between them, and the other source can neither withdraw
    them by announcing a deletion nor by its deletion sync."""
    first_records = generate_records(10, record)              # gen-000000 .. gen-000009
    second_records = generate_records(15, record)[5:]         # gen-000005 .. gen-000014
    second = DcatSource(second_records, page_size=10)
    with DcatServer(DcatSource(first_records, page_size=10)) as a, DcatServer(second) as b:
        allowed = frozenset({a.origin, b.origin})
        src_a, src_b = (orgs.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id="org-a", kind="dcat", url=server.url, name=name,
            allow_private=True)) for name, server in (("hospital", a), ("mirror", b)))

        def run(source: HarvestSource) -> Any:
            report = orgs.harvest.run_source(SYSTEM, source.id, allowed_origins=allowed)
            assert report.status == "completed", report.error
            return report

        assert run(src_a).counts["created"] == 10
        kept = run(src_b)
        assert kept.counts["created"] == 5 and kept.counts["failed"] == 5
        refused = [e for e in kept.errors if e["property"] == "dct:identifier"]
        assert sorted(e["record"] for e in refused) == [f"gen-{i:06d}" for i in range(5, 10)]
        assert all("'hospital'" in e["message"] and src_a.id in e["message"] for e in refused)
        snapshot = _datasets(orgs)
        assert len(snapshot) == 15
        assert _iris(orgs)["gen-000007"] == f"http://{a.origin}/dataset/gen-000007"
        for _ in range(2):
            again_a, again_b = run(src_a), run(src_b)
            assert again_a.counts["unchanged"] == 10 and again_a.counts["failed"] == 0
            assert again_b.counts["unchanged"] == 5 and again_b.counts["failed"] == 5
            for report in (again_a, again_b):
                assert report.counts["created"] == report.counts["updated"] == 0
            assert _datasets(orgs) == snapshot  # nothing rewritten by either
        # the second source announces the deletion of one of the first one's datasets, and
        # stops describing the ones it shares with it: none of them is withdrawn
        gone = Record("gone", (
            f"<http://{b.origin}/records/gone> a <http://www.w3.org/ns/dcat#CatalogRecord> ;\n"
            "  <http://www.w3.org/ns/adms#status> "
            "<http://purl.org/adms/changetype/deleted> ;\n"
            f"  <http://xmlns.com/foaf/0.1/primaryTopic> <http://{a.origin}/dataset/gen-000001> ."
        ))
        second.records[:] = [*second_records[5:], gone]
        last = run(src_b)
        assert last.counts["withdrawn"] == 0 and last.counts["failed"] == 0
        assert all(_status(orgs, f"gen-{i:06d}") == "published" for i in range(15))


def test_pages_with_a_byte_order_mark_are_read_in_this_process_and_in_workers(
    orgs: Runtime,
) -> None:
    """Windows tools write a UTF-8 byte order mark, which Oxigraph refuses: such a page is read
    by the general parser instead, whether it is one of the first pages (read here) or a later
    one (read by a worker), and nothing on it is lost."""
    source = DcatSource(generate_records(60, record), page_size=10, bom_pages=(1, 5))
    with DcatServer(source) as server:
        report = _harvest(orgs, server)
    assert report.status == "completed" and report.complete, report.errors
    assert report.counts["created"] == 60 and report.counts["failed"] == 0
    assert not [e for e in report.errors if e["severity"] == "error"]
    assert len(_datasets(orgs)) == 60


def test_conditional_requests_are_used(orgs: Runtime) -> None:
    source = DcatSource(generate_records(30, record), page_size=10)
    with DcatServer(source) as server:
        _harvest(orgs, server)
        source.requests.clear()
        again = _harvest(orgs, server)
    assert again.counts["unchanged"] == 30
    assert len(source.requests) == 3
    assert source.not_modified == 3  # every page answered 304: nothing re-downloaded


def test_corrupt_page_keeps_the_rest_and_reports_where(orgs: Runtime) -> None:
    source = DcatSource(generate_records(50, record), page_size=10, corrupt_page=3)
    with DcatServer(source) as server:
        report = _harvest(orgs, server)
    assert report.status == "completed"
    assert not report.complete
    assert report.counts["created"] == 20  # pages 1-2; paging stops at the broken page
    errors = [e for e in report.errors if "not valid RDF" in e["message"]]
    assert errors and errors[0]["location"].endswith("page=3")
    assert report.counts["withdrawn"] == 0  # incomplete runs never withdraw


def test_paging_loop_is_detected(orgs: Runtime) -> None:
    source = DcatSource(generate_records(30, record), page_size=10, loop_at_page=2)
    with DcatServer(source) as server:
        report = _harvest(orgs, server)
    assert report.status == "completed" and not report.complete
    assert any("paging loop" in e["message"] for e in report.errors)
    assert report.counts["created"] == 20


def test_invalid_record_strict_rejects_lenient_stores_with_warnings(orgs: Runtime) -> None:
    records = generate_records(5, record)
    records[2] = Record(*record(2, description=""))  # no dct:description
    source = DcatSource(records, page_size=10)
    with DcatServer(source) as server:
        strict = _harvest(orgs, server, validation_mode="strict")
        assert strict.counts["invalid"] == 1 and strict.counts["created"] == 4
        problem = [e for e in strict.errors if e["record"] == "gen-000002"]
        assert any("dct:description" in (e["property"] or "") + e["message"] for e in problem)
        assert "gen-000002" not in _datasets(orgs)
        lenient = _harvest(orgs, server, validation_mode="lenient")
    assert lenient.counts["created"] == 1 and lenient.counts["invalid"] == 1
    stored = orgs.datasets.get(SYSTEM, _datasets(orgs)["gen-000002"]["id"])
    assert any("dct:description" in (i.get("path") or "") + i["message"] for i in stored.validation)


def test_dry_run_writes_nothing(orgs: Runtime) -> None:
    source = DcatSource(generate_records(12, record), page_size=5)
    with DcatServer(source) as server:
        report = _harvest(orgs, server, dry_run=True)
    assert report.counts["created"] == 12
    assert _datasets(orgs) == {}


def test_hostile_sources_fail_safely(orgs: Runtime) -> None:
    for url in (
        "http://127.0.0.1:9/catalog",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.1.2.3/catalog",
        "http://[::1]:9/catalog",
    ):
        report = orgs.harvest.run_url(SYSTEM, "dcat", url, "org-a")
        assert report.status == "failed"
        assert "refused" in (report.error or ""), report.error
    source = DcatSource(
        generate_records(3, record),
        page_size=10,
        redirect_page=(1, "http://169.254.169.254/latest/meta-data/"),
    )
    with DcatServer(source) as server:
        report = _harvest(orgs, server)
    assert report.status == "failed"
    source = DcatSource(generate_records(3, record), page_size=10, endless_page=1)
    with DcatServer(source) as server:
        from catalogue.harvest.dcat import DcatHarvester, HarvestLimits
        from catalogue.services import harvest as harvest_service

        original = harvest_service._harvester
        harvest_service._harvester = lambda kind: DcatHarvester(  # type: ignore[assignment]
            limits=HarvestLimits(max_page_bytes=2_000_000)
        )
        try:
            report = _harvest(orgs, server)
        finally:
            harvest_service._harvester = original
    assert report.status == "failed"
    assert "larger" in (report.error or "") or "limit" in (report.error or "")


def test_providers_only_harvest_into_their_own_organisation(orgs: Runtime) -> None:
    provider = orgs.identities.create_user(SYSTEM, User("", "prov-a", Role.PROVIDER, "org-a"))
    from catalogue.errors import Forbidden, NotFound
    from catalogue.model.identity import Identity

    ident = Identity(
        user_id=provider.id, username="prov-a", role=Role.PROVIDER, organisation_id="org-a"
    )
    with pytest.raises(Forbidden):
        orgs.harvest.run_url(ident, "dcat", "https://example.org/catalog", "org-b")
    other = orgs.harvest.register(
        SYSTEM,
        HarvestSource(id="", organisation_id="org-b", kind="dcat", url="https://example.org/b"),
    )
    with pytest.raises(NotFound):
        orgs.harvest.run_source(ident, other.id)
    with pytest.raises(Forbidden):
        orgs.harvest.register(
            ident,
            HarvestSource(
                id="",
                organisation_id="org-a",
                kind="dcat",
                url="http://10.0.0.5/",
                allow_private=True,
            ),
        )


@pytest.mark.parametrize(
    "path",
    sorted(
        p.relative_to(DATA).as_posix()
        for p in DATA.rglob("*")
        if p.suffix in (".ttl", ".nt", ".jsonld", ".rdf", ".trig")
    ),
)
def test_shared_examples_harvest_or_report_precisely(orgs: Runtime, path: str) -> None:
    report = orgs.harvest.run_url(CLI_IDENTITY, "dcat", str(DATA / path), "org-a")
    if report.status == "failed":
        assert report.error and len(report.error) > 10
        return
    counts = report.counts
    assert counts["seen"] == sum(counts[k] for k in ("created", "updated", "unchanged", "failed"))
    if counts["seen"] == 0:
        assert any("no dcat:Dataset" in e["message"] for e in report.errors)
    if "invalid" in path:
        assert report.counts["invalid"] >= 1
        assert any(e["property"] for e in report.errors), report.errors


def test_cli_one_shot_json_and_exit_codes(orgs: Runtime, db_url: str, tmp_path: Path) -> None:
    env = {
        "CATALOGUE_DATABASE_URL": db_url,
        "CATALOGUE_DATA_DIR": str(tmp_path / "d"),
        "CATALOGUE_SECRET_KEY": TEST_SECRET,
    }
    ok = CliRunner().invoke(
        main,
        [
            "harvest",
            "dcat",
            str(DATA / "health-ri" / "example-dataset.ttl"),
            "--organisation",
            "org-a",
            "--json",
        ],
        env=env,
    )
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.stdout)
    assert summary["status"] == "completed" and summary["counts"]["seen"] >= 1
    assert set(summary["counts"]) >= {
        "seen",
        "created",
        "updated",
        "unchanged",
        "withdrawn",
        "invalid",
        "failed",
    }
    bad = CliRunner().invoke(
        main,
        ["harvest", "dcat", str(tmp_path / "missing.ttl"), "--organisation", "org-a", "--json"],
        env=env,
    )
    assert bad.exit_code == 1
    assert json.loads(bad.stdout)["status"] == "failed"
    nobody = CliRunner().invoke(
        main,
        ["harvest", "dcat", str(DATA / "health-ri" / "example-dataset.ttl"),
         "--organisation", "org-nobody"],
        env=env,
    )
    assert nobody.exit_code != 0
    assert "unknown organisation 'org-nobody'" in nobody.output


def test_cli_changes_pauses_and_deletes_a_source(orgs: Runtime, db_url: str,
                                                 tmp_path: Path) -> None:
    env = {"CATALOGUE_DATABASE_URL": db_url, "CATALOGUE_DATA_DIR": str(tmp_path / "d"),
           "CATALOGUE_SECRET_KEY": TEST_SECRET}
    runner = CliRunner()

    def cli(*args: str) -> Any:
        return runner.invoke(main, list(args), env=env)

    with DcatServer(DcatSource(generate_records(5, record), page_size=10)) as server:
        added = cli("harvest", "add", server.url, "--organisation", "org-a", "--name", "lab",
                    "--schedule", "@daily", "--allow-private")
        assert added.exit_code == 0, added.output
        source_id = added.stdout.strip()
        assert cli("harvest", "run", source_id).exit_code == 0
        # the run state (page validators, identifiers) is read for a run, not for a listing
        assert orgs.harvest.get_source(SYSTEM, source_id).state["pages"]
        assert [s.state for s in orgs.harvest.list_sources(SYSTEM, "org-a")
                if s.id == source_id] == [{}]
        paused = cli("harvest", "update", source_id, "--pause", "--validation", "strict",
                     "--incremental")
        assert paused.exit_code == 0, paused.output
        assert "paused" in paused.stdout
        listed = cli("harvest", "sources").stdout
        assert f"{source_id}" in listed and "@daily (paused)" in listed
        source = orgs.harvest.get_source(SYSTEM, source_id)
        assert (source.enabled, source.validation_mode, source.config["incremental"]) == \
            (False, "strict", True)
        assert cli("harvest", "update", source_id).exit_code != 0  # nothing to change
        fixed = cli("harvest", "update", source_id, "--schedule", "now and then")
        assert fixed.exit_code != 0 and "not understood" in fixed.output
        gone = cli("harvest", "delete", source_id, "--withdraw-datasets")
        assert gone.exit_code == 0, gone.output
        assert "5 dataset(s) withdrawn, 0 left published" in gone.stdout
        assert source_id not in cli("harvest", "sources").stdout
    assert {d["status"] for d in _datasets(orgs).values()} == {"withdrawn"}


def test_a_source_paused_or_deleted_after_it_was_found_due_does_not_run(
    orgs: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scheduler lists the due sources, then runs them one by one: a source paused or
    deleted in between is not run from the stale listing (nor does it stop the others)."""
    from catalogue.store.harvest import HarvestRepository

    servers = [DcatServer(DcatSource(generate_records(5, record), page_size=10))
               for _ in range(3)]
    for server in servers:
        server.__enter__()
    try:
        paused, deleted, kept = (orgs.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id=org, kind="dcat", url=server.url, schedule="@daily",
            allow_private=True)) for org, server in zip(("org-a", "org-b", "org-a"), servers,
                                                          strict=True))
        listed = HarvestRepository.due_sources

        def listed_then_changed(self: HarvestRepository) -> list[HarvestSource]:
            due = listed(self)
            orgs.harvest.update_source(SYSTEM, paused.id, {"enabled": False})
            orgs.harvest.delete_source(SYSTEM, deleted.id)
            return due

        monkeypatch.setattr(HarvestRepository, "due_sources", listed_then_changed)
        reports = orgs.harvest.run_due(SYSTEM)
    finally:
        for server in servers:
            server.__exit__(None, None, None)
    assert [r.source_id for r in reports] == [kept.id]
    assert reports[0].counts["created"] == 5
    assert all(not s.requests for s in (servers[0].source, servers[1].source))


def test_incremental_runs_ask_for_changes_only_and_never_withdraw(orgs: Runtime) -> None:
    from datetime import UTC, datetime, timedelta

    old = datetime.now(UTC) - timedelta(days=30)
    records = generate_records(20, record)
    for r in records:
        r.modified = old
    source = DcatSource(records, page_size=10)
    with DcatServer(source) as server:
        registered = orgs.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id="org-a", kind="dcat", url=server.url,
            allow_private=True, config={"incremental": True}))
        full = orgs.harvest.run_source(SYSTEM, registered.id,
                                       allowed_origins=frozenset({server.origin}))
        assert full.counts["created"] == 20
        assert not any("modified_since" in p for p in source.requests)
        source.requests.clear()
        source.records[3] = Record(*record(3, version="2.0.0"))  # modified now
        del source.records[10:]  # a changes-only feed does not list the others
        delta = orgs.harvest.run_source(SYSTEM, registered.id,
                                        allowed_origins=frozenset({server.origin}))
    assert delta.status == "completed"
    assert all("modified_since=" in p for p in source.requests)
    assert delta.counts["seen"] == 1 and delta.counts["updated"] == 1
    assert delta.counts["withdrawn"] == 0
    assert sum(1 for d in _datasets(orgs).values() if d["status"] == "published") == 20


def test_an_incomplete_incremental_run_is_not_the_next_starting_point(orgs: Runtime) -> None:
    """A run that stopped at a broken page ends 'completed' with what it read, but the next
    incremental run asks for changes since the last *complete* run, so the pages it could not
    read are asked for again."""
    from datetime import UTC, datetime, timedelta

    old = datetime.now(UTC) - timedelta(days=30)
    records = generate_records(30, record)
    for r in records:
        r.modified = old
    source = DcatSource(records, page_size=10)
    with DcatServer(source) as server:
        registered = orgs.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id="org-a", kind="dcat", url=server.url,
            allow_private=True, config={"incremental": True}))
        origins = frozenset({server.origin})
        full = orgs.harvest.run_source(SYSTEM, registered.id, allowed_origins=origins)
        assert full.status == "completed" and full.counts["created"] == 30
        for i in range(30):  # everything changes; the second page breaks during the next run
            source.records[i] = Record(*record(i, version="2.0.0"))
        source.corrupt_page = 2
        broken = orgs.harvest.run_source(SYSTEM, registered.id, allowed_origins=origins)
        assert broken.status == "completed" and broken.counts["updated"] == 10
        source.corrupt_page = None
        source.requests.clear()
        again = orgs.harvest.run_source(SYSTEM, registered.id, allowed_origins=origins)
    assert again.counts["updated"] == 20  # pages 2 and 3 were asked for again
    since = {p.split("modified_since=")[1].split("&")[0] for p in source.requests}
    assert len(since) == 1
    from urllib.parse import unquote

    asked = datetime.fromisoformat(unquote(since.pop()))
    first_run = orgs.harvest.get_run(SYSTEM, full.run_id)[0]
    assert asked == first_run.started_at  # the complete run's start, not the broken one's


def test_scheduled_sources_run_when_due(orgs: Runtime) -> None:
    source = DcatSource(generate_records(5, record), page_size=10)
    with DcatServer(source) as server:
        registered = orgs.harvest.register(SYSTEM, HarvestSource(
            id="", organisation_id="org-a", kind="dcat", url=server.url, allow_private=True,
            schedule="every 6h"))
        reports = orgs.harvest.run_due(SYSTEM)
        assert [r.source_id for r in reports] == [registered.id]
        assert reports[0].counts["created"] == 5
        assert orgs.harvest.run_due(SYSTEM) == []  # next run is 6 hours away
    after = orgs.harvest.get_source(SYSTEM, registered.id)
    assert after.next_run_at is not None and after.last_run_at is not None
    assert (after.next_run_at - after.last_run_at).total_seconds() > 5 * 3600


def test_a_killed_run_is_marked_failed(orgs: Runtime) -> None:
    with orgs.database.transaction() as conn:
        conn.execute("INSERT INTO harvest_runs (organisation_id, kind, pid) "
                     "VALUES ('org-a', 'dcat', 999999999)")
    assert orgs.harvest.mark_stale_runs() == 1
    with orgs.database.transaction() as conn:
        row = conn.execute("SELECT status, error FROM harvest_runs").fetchone()
    assert row["status"] == "failed" and "stopped" in row["error"]


def test_bulk_written_records_read_back_exactly_as_parsed(orgs: Runtime) -> None:
    """The harvester's batched writes (COPY for new records, pipelined updates) store what the
    profile read, field for field, the same as a single ``insert`` would."""
    from catalogue.dcat.formats import parse_rdf
    from catalogue.dcat.profiles import get_profile
    from catalogue.store.datasets import DatasetRepository

    rt = orgs
    source = DcatSource(generate_records(250, record), page_size=100)  # pages 3+ in workers
    with DcatServer(source) as server:
        assert _harvest(rt, server).counts["created"] == 250
        source.records[150] = Record(*record(150, version="2.0.0"))  # an update, batched too
        assert _harvest(rt, server).counts["updated"] == 1
        profile = get_profile()
        compared = 0
        for rec in (source.records[0], source.records[150], source.records[249]):
            text = PREFIXES + rec.turtle.replace(BASE, server.url.rsplit("/catalog", 1)[0])
            graph = profile.canonicalise(parse_rdf(text.encode(), content_type="text/turtle"))
            node = profile.dataset_nodes(graph)[0]
            expected = profile.parse(graph, node, "org-a")
            with rt.database.transaction() as conn:
                stored = DatasetRepository(conn).find("org-a", expected.identifier)
                published = conn.execute(
                    "SELECT published_at FROM datasets WHERE identifier = %s",
                    (expected.identifier,)).fetchone()
            assert stored is not None and published is not None
            assert published["published_at"] is not None
            for name in ("title", "description", "keywords", "themes", "conditions",
                         "modalities", "body_parts", "countries", "sexes", "access_rights",
                         "number_of_individuals", "number_of_studies", "min_age", "max_age",
                         "temporal_start", "temporal_end", "issued", "modified", "iri", "graph",
                         "fields", "distributions"):
                assert getattr(stored, name) == getattr(expected, name), name
            assert stored.distributions, "the generated records have distributions"
            compared += 1
        assert compared == 3
