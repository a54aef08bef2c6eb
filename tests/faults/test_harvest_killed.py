"""A harvest killed with SIGKILL halfway, then run again.

Real parts: the real `catalogue harvest run` command in its own process, a real HTTP DCAT-AP
source (the stand-in server serving generated EUCAIM-DCAT-AP records, slowed so the run takes
several seconds), real PostgreSQL and the embedded search index. The first process is killed
with SIGKILL once part of the catalogue is committed: its run stays `running` with the dead
pid, the next run marks it `failed`, and completes the source. Compared with the source (the
ground truth): every record present exactly once, what the killed run committed is kept (it is
`unchanged` the second time), nothing else is created twice, and the search index converges.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.store.harvest import HarvestSource
from catalogue.testing.dcat_generator import CANCERS, record
from catalogue.testing.dcat_server import DcatServer, DcatSource, generate_records
from tests.conftest import make_config
from tests.integration.test_search_resilience import REPO, cli_env, wait_until

RECORDS = 240


def _datasets(rt: Runtime) -> list[dict[str, str]]:
    with rt.database.transaction() as conn:
        return [dict(r) for r in conn.execute(
            "SELECT identifier, iri, status, title->>'en' AS title FROM datasets "
            "WHERE organisation_id = 'org-k'")]


def _title(i: int) -> str:
    """The title record ``i`` of the generator carries (the ground truth)."""
    cancer = CANCERS[i % len(CANCERS)][0]
    return f"{cancer.capitalize()} imaging cohort {i}"


@pytest.mark.slow
def test_killed_harvest_is_marked_failed_and_the_rerun_completes_it(
        tmp_path: Path, db_url: str) -> None:
    config = make_config(tmp_path, db_url)
    rt = Runtime(config).start(background_indexer=False)
    try:
        rt.identities.create_organisation(SYSTEM, Organisation("org-k", "Killed", "ES"))
        source = DcatSource(generate_records(RECORDS, record), page_size=10, page_delay=0.4)
        truth = {r.identifier for r in source.records}
        assert len(truth) == RECORDS
        titles = {f"gen-{i:06d}": _title(i) for i in range(RECORDS)}
        assert set(titles) == truth and all(
            f'dct:title "{titles[r.identifier]}"@en' in r.turtle for r in source.records)
        with DcatServer(source) as server:
            registered = rt.harvest.register(SYSTEM, HarvestSource(
                id="", organisation_id="org-k", kind="dcat", url=server.url,
                allow_private=True))
            command = [sys.executable, "-m", "catalogue.cli", "harvest", "run", registered.id]
            env = cli_env(config)
            proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT)
            try:
                wait_until(lambda: len(_datasets(rt)) >= 30, 120, "part of the source is stored")
                os.kill(proc.pid, signal.SIGKILL)
            finally:
                proc.wait(30)  # reaped, as its parent (a shell, cron, systemd) would
            assert proc.returncode == -signal.SIGKILL
            time.sleep(0.5)
            kept = {d["identifier"] for d in _datasets(rt)}
            assert 30 <= len(kept) < RECORDS, len(kept)
            with rt.database.transaction() as conn:
                killed = conn.execute("SELECT id, status, pid FROM harvest_runs").fetchall()
            assert [(r["status"], r["pid"]) for r in killed] == [("running", proc.pid)]

            # the operator runs it again: the dead run is marked failed, the source completed
            rerun = subprocess.run([*command, "--json"], env=env, cwd=REPO, capture_output=True,
                                   text=True, timeout=300)
            assert rerun.returncode == 0, rerun.stdout + rerun.stderr
        with rt.database.transaction() as conn:
            runs = {str(r["id"]): r for r in conn.execute(
                "SELECT id, status, error, counts FROM harvest_runs")}
        first = runs.pop(str(killed[0]["id"]))
        assert first["status"] == "failed" and "stopped before the run finished" in first["error"]
        (second,) = runs.values()
        assert second["status"] == "completed"
        counts = second["counts"]
        # what the killed run committed is kept (unchanged), the rest is created once
        assert counts["unchanged"] == len(kept), counts
        assert counts["created"] == RECORDS - len(kept), counts
        assert not counts.get("failed") and not counts.get("updated"), counts

        stored = _datasets(rt)
        identifiers = [d["identifier"] for d in stored]
        assert len(identifiers) == len(set(identifiers)) == RECORDS  # no duplicates
        assert set(identifiers) == truth                             # nothing lost
        iris = [d["iri"] for d in stored]
        assert len(set(iris)) == RECORDS
        origin = f"http://{server.origin}"
        assert all(d["iri"] == f"{origin}/dataset/{d['identifier']}" for d in stored), stored[:3]
        assert {d["status"] for d in stored} == {"published"}
        wrong = {d["identifier"]: d["title"] for d in stored
                 if d["title"] != titles[d["identifier"]]}
        assert not wrong, list(wrong.items())[:5]  # every record stored with its own title
        # the search index converges on PostgreSQL (the CLI drained the outbox it filled)
        assert rt.indexer is not None
        rt.indexer.drain()
        assert rt.datasets.search(SYSTEM, filters={"organisation_id": ["org-k"]}).total == RECORDS
    finally:
        rt.close()
