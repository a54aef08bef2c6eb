"""``catalogue serve --processes 2``: one port, a primary and a worker process.

Real parts: the real command in a subprocess, on the embedded PostgreSQL and the embedded
tantivy index of a fresh data folder, clients over real HTTP. Which process answers is forced
by stopping the other one with SIGSTOP (both accept from one listening socket, so a stopped
process leaves every new connection to the other) and read back from ``/readyz``'s
``details.process``.

What must hold: the worker serves searches of what the primary indexed; a write the worker
accepts while the primary is frozen is stored and, once the primary runs again, indexed and
found through the worker; a worker killed with SIGKILL is started again while requests keep
succeeding; SIGTERM to the primary stops every process (and the embedded PostgreSQL); a primary
killed with SIGKILL takes its workers with it.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from catalogue.config import load_config
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.testing.app_server import free_port
from tests.conftest import TEST_SECRET
from tests.integration.test_search_resilience import call, wait_until


def _dataset(i: int) -> dict[str, Any]:
    return {"identifier": f"proc-{i}", "organisation_id": "org-p", "status": "published",
            "title": {"en": f"Prostate MRI cohort {i}"}, "modalities": ["MR"]}


def _workers(primary: psutil.Process) -> list[psutil.Process]:
    """The primary's live worker processes (not the one just killed, still a zombie)."""
    found = []
    for child in primary.children():
        try:
            if "serve-worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.Error:  # a zombie not yet reaped, or gone
            continue
    return found


def _postgres(folder: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if "postgres" in (proc.info["name"] or "") and str(folder) in " ".join(
                proc.info["cmdline"] or []):
            found.append(proc)
    return found


@contextmanager
def _serving(folder: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGUE_")}
    env.update({"CATALOGUE_SECRET_KEY": TEST_SECRET, "CATALOGUE_INDEXER_INTERVAL": "0.2",
                "CATALOGUE_HARVEST_SCHEDULER": "false"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "catalogue.cli", "--data-dir", str(folder), "serve",
         "--port", str(port), "--processes", "2", "--workers", "4"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            for child in psutil.Process(proc.pid).children(recursive=True):
                child.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            assert proc.stderr is not None
            pytest.fail(f"serve exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            return call(base, "GET", "/readyz", timeout=2).status == 200
        except OSError:
            return False
    wait_until(ready, 90, "catalogue serve is ready")


def _role(base: str) -> dict[str, Any]:
    reply = call(base, "GET", "/readyz", timeout=10)
    assert reply.status == 200, reply.raw
    return dict(reply.body["details"]["process"])


def _pending(base: str) -> int:
    reply = call(base, "GET", "/readyz", timeout=10)
    return int(reply.body["details"]["indexer"]["pending"])


def _total(base: str, q: str = "prostate") -> int:
    reply = call(base, "GET", f"/api/v1/datasets?q={q}&size=1", timeout=10)
    assert reply.status == 200, reply.raw
    return int(reply.body["total"])


@contextmanager
def _frozen(process: psutil.Process) -> Iterator[None]:
    process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="catp-", dir="/tmp"))  # a short socket path
    try:
        yield path
    finally:
        for proc in _postgres(path):  # a primary killed with SIGKILL leaves PostgreSQL behind
            proc.kill()
        shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _started(folder: Path) -> Iterator[tuple[str, subprocess.Popen[bytes], psutil.Process,
                                             psutil.Process]]:
    """``catalogue serve --processes 2`` ready: (base URL, command, primary, its worker)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with _serving(folder, port) as proc:
        _ready(base, proc)
        primary = psutil.Process(proc.pid)
        wait_until(lambda: len(_workers(primary)) == 1, 30, "one worker process runs")
        yield base, proc, primary, _workers(primary)[0]


@pytest.mark.slow
def test_two_processes_share_the_port_and_the_index(folder: Path) -> None:
    with _started(folder) as (base, proc, primary, worker):
        # both processes answer, each telling its role
        with _frozen(primary):
            assert _role(base) == {"role": "worker", "pid": worker.pid}
        with _frozen(worker):
            assert _role(base) == {"role": "primary", "pid": primary.pid}

        # a provider, made in this process on the running embedded PostgreSQL
        rt = Runtime(load_config(environ={}, data_dir=str(folder), secret_key=TEST_SECRET)).start(
            with_search=False, migrate=False)
        try:
            rt.identities.create_organisation(SYSTEM, Organisation("org-p", "Procs", "DE"))
            rt.identities.create_user(SYSTEM, User("", "prov-p", Role.PROVIDER, "org-p"))
            token = rt.identities.issue_token(SYSTEM, "prov-p").secret
        finally:
            rt.close()
        assert _postgres(folder), "the embedded PostgreSQL belongs to the primary"

        for i in range(5):
            reply = call(base, "POST", "/api/v1/datasets", _dataset(i), token)
            assert reply.status == 201, reply.raw
        # indexed by the primary, found through the worker (its reader follows the commits)
        wait_until(lambda: _pending(base) == 0, 15, "the primary indexed the writes")
        with _frozen(primary):
            wait_until(lambda: _total(base) == 5, 15, "the worker finds what the primary indexed")

        # a write the worker accepts while the primary is frozen: stored at once, indexed when
        # the primary runs again, then found through the worker too
        with _frozen(primary):
            reply = call(base, "POST", "/api/v1/datasets", _dataset(5), token)
            assert reply.status == 201, reply.raw
            assert call(base, "GET", f"/api/v1/datasets/{reply.body['id']}").status == 200
            assert _total(base) == 5  # nobody indexes while the primary is frozen
        wait_until(lambda: _pending(base) == 0, 15, "the primary indexed the late write")
        with _frozen(primary):
            wait_until(lambda: _total(base) == 6, 15, "the worker finds the late write")

        # both serve the same export (the address, part of every IRI, reached the worker)
        path = f"/dcat/datasets/{reply.body['id']}?format=nt"
        with _frozen(primary):
            from_worker = call(base, "GET", path)
        with _frozen(worker):
            from_primary = call(base, "GET", path)
        assert from_worker.status == from_primary.status == 200
        assert f"<{base}/".encode() in from_primary.raw
        assert from_worker.raw == from_primary.raw

        # a worker killed with SIGKILL is started again; requests keep succeeding meanwhile
        worker.kill()
        statuses = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            statuses.append(call(base, "GET", "/api/v1/datasets?q=prostate").status)
            if [w for w in _workers(primary) if w.pid != worker.pid]:
                break
            time.sleep(0.1)
        assert statuses and set(statuses) == {200}, statuses
        replacement = [w for w in _workers(primary) if w.pid != worker.pid]
        assert len(replacement) == 1, "the supervisor started a new worker"
        _ready(base, proc)
        with _frozen(primary):
            wait_until(lambda: _role(base) == {"role": "worker", "pid": replacement[0].pid},
                       30, "the new worker serves")
            assert _total(base) == 6

        # SIGTERM to the primary stops the worker and the embedded PostgreSQL too
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        assert not replacement[0].is_running() or replacement[0].status() == psutil.STATUS_ZOMBIE
        wait_until(lambda: not _postgres(folder), 30, "the embedded PostgreSQL stopped")


@pytest.mark.slow
def test_workers_exit_when_the_primary_is_killed(folder: Path) -> None:
    with _started(folder) as (base, proc, _primary, worker):
        proc.kill()
        proc.wait(10)

        def gone() -> bool:
            try:
                return worker.status() == psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return True
        wait_until(gone, 15, "the orphaned worker exits")
        with pytest.raises(OSError):  # nobody holds the port any more
            call(base, "GET", "/readyz", timeout=2)
