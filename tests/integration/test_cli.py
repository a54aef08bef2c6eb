"""The command line, in-process (click runner) and as real processes (demo, serve)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import pytest
from click.testing import CliRunner

from catalogue.cli import main
from tests.conftest import TEST_SECRET, free_port


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        "CATALOGUE_DATABASE_URL": db_url,
        "CATALOGUE_DATA_DIR": str(tmp_path / "data"),
        "CATALOGUE_SECRET_KEY": TEST_SECRET,
        "CATALOGUE_ENV": "test",
    }


def run(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def test_identity_commands_end_to_end(env: dict[str, str]) -> None:
    assert run(env, "orgs", "create", "org-x", "--name", "Org X", "--country", "es").exit_code == 0
    assert "org-x" in run(env, "orgs", "list").output
    r = run(env, "users", "create", "alice", "--role", "provider", "--organisation", "org-x")
    assert r.exit_code == 0, r.output
    r = run(env, "users", "create", "bob", "--role", "provider")
    assert r.exit_code == 2 and "provider must belong to an organisation" in r.output
    r = run(env, "tokens", "create", "alice", "--name", "ci", "--json")
    assert r.exit_code == 0
    issued = json.loads(r.stdout)
    assert issued["token"].startswith(issued["id"] + ".")
    listing = run(env, "tokens", "list").output
    assert issued["id"] in listing and issued["token"].split(".")[1] not in listing
    assert run(env, "tokens", "revoke", issued["token"]).exit_code == 0
    assert "revoked" in run(env, "tokens", "list").output
    assert run(env, "users", "deactivate", "alice").exit_code == 0
    assert "(deactivated)" in run(env, "users", "list").output


def test_config_show_masks_secrets(env: dict[str, str]) -> None:
    env = {**env, "CATALOGUE_SEARCH_URL": "https://user:topsecretpw@search.example:9200"}
    r = run(env, "config", "show")
    assert r.exit_code == 0
    assert TEST_SECRET not in r.output and "topsecretpw" not in r.output
    assert "CATALOGUE_SEARCH_URL" in r.output and "search.example:9200" in r.output
    data = json.loads(run(env, "config", "show", "--json").stdout)
    assert data["secret_key"] == "********"


def test_invalid_configuration_exits_nonzero_with_message(env: dict[str, str]) -> None:
    r = run({**env, "CATALOGUE_PORT": "abc"}, "config", "show")
    assert r.exit_code == 2 and "CATALOGUE_PORT" in r.output
    r = run({**env, "CATALOGUE_ENV": "production", "CATALOGUE_SECRET_KEY": ""}, "db", "upgrade")
    assert r.exit_code == 2 and "CATALOGUE_SECRET_KEY" in r.output


def test_unreachable_database_is_a_clear_error(env: dict[str, str]) -> None:
    bad = {
        **env,
        "CATALOGUE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        "CATALOGUE_DATABASE_TIMEOUT": "1",
    }
    r = run(bad, "orgs", "list")
    assert r.exit_code == 2
    assert "database is unavailable" in r.output


def test_db_upgrade_and_status(env: dict[str, str]) -> None:
    r = run(env, "db", "upgrade")
    assert r.exit_code == 0 and "up to date" in r.output
    assert "applied  0001_initial" in run(env, "db", "status").output


def test_index_rebuild_and_status(env: dict[str, str]) -> None:
    assert run(env, "orgs", "create", "org-y", "--name", "Y").exit_code == 0
    r = run(env, "index", "rebuild")
    assert r.exit_code == 0 and "switched to catalogue-datasets-v2-" in r.output
    status = json.loads(run(env, "index", "status").stdout)
    assert status["search"]["engine"] == "tantivy"


# -- real processes ---------------------------------------------------------------------------
_free_port = free_port


def _wait_ready(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise AssertionError(f"process exited: {proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise AssertionError("not ready in time")


def _postgres_processes(data_dir: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if "postgres" in (proc.info["name"] or "") and str(data_dir) in cmdline:
            found.append(proc)
    return found


def _demo(data_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGUE_")}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "catalogue.cli",
            "--data-dir",
            str(data_dir),
            "demo",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_demo_starts_stops_cleanly_on_sigterm_and_reuses_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo-data"
    port = _free_port()
    proc = _demo(data_dir, port)
    try:
        _wait_ready(port, proc, timeout=120)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/datasets?q=lung") as r:
            body = json.loads(r.read())
        assert body["total"] >= 1
        # the EUCAIM-DCAT-AP demo descriptions came in through the harvester
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/datasets?q=prostate") as r:
            titles = [h["title"].get("en") for h in json.loads(r.read())["hits"]]
        assert "Prostate cancer multiparametric MRI collection" in titles
        assert _postgres_processes(data_dir)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    time.sleep(0.5)
    assert _postgres_processes(data_dir) == [], "PostgreSQL left running after SIGTERM"
    # second start: warm, reuses the data (nothing new created)
    proc = _demo(data_dir, port)
    try:
        elapsed = _wait_ready(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/datasets?q=lung") as r:
            assert json.loads(r.read())["total"] == body["total"]
        print(f"warm demo ready in {elapsed:.2f}s")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)
            proc.kill()
            _, err = proc.communicate()
            raise AssertionError(err.decode()[-5000:]) from None
    assert b"created: 0 datasets, 0 organisations, 0 users" in err
    assert _postgres_processes(data_dir) == []


@pytest.mark.slow
def test_port_in_use_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _demo(tmp_path / "d", port)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use".encode() in err
    assert _postgres_processes(tmp_path / "d") == []


@pytest.mark.slow
def test_serve_over_real_http_with_external_database(db_url: str, tmp_path: Path) -> None:
    """`catalogue serve` against an external PostgreSQL: ready, anonymous writes refused in the
    pinned error shape, SIGTERM exits cleanly."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGUE_")}
    env.update(
        {
            "CATALOGUE_DATABASE_URL": db_url,
            "CATALOGUE_DATA_DIR": str(tmp_path / "d"),
            "CATALOGUE_SECRET_KEY": TEST_SECRET,
            "CATALOGUE_PORT": str(port),
            "CATALOGUE_WORKERS": "4",
            "CATALOGUE_LOG_FORMAT": "json",
        }
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "catalogue.cli", "serve"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_ready(port, proc)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/datasets",
            method="POST",
            data=b'{"identifier": "x", "organisation_id": "o", "title": {"en": "x"}}',
            headers={"Content-Type": "application/json"},
        )
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=5)
        assert caught.value.code == 401
        body = json.loads(caught.value.read())
        assert body["error"]["code"] == "unauthenticated"
        assert body["error"]["request_id"] == caught.value.headers["X-Request-ID"]
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0
    logs = [json.loads(line) for line in err.decode().splitlines() if line.startswith("{")]
    access = [entry for entry in logs if entry["logger"] == "catalogue.access"]
    assert any("POST /api/v1/datasets 401" in entry["message"] for entry in access)
    # the request body never reaches the logs
    assert all('"identifier"' not in entry["message"] for entry in logs)


@pytest.mark.slow
def test_sigterm_while_requests_are_being_handled_still_stops_the_server(
        db_url: str, tmp_path: Path) -> None:
    """Regression: SIGTERM landing inside waitress's request handling was swallowed by its event
    loop, so the server kept running (seen once in CI). Terminate is a SystemExit now."""
    import threading

    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGUE_")}
    for attempt in range(3):
        port = _free_port()
        env.update({"CATALOGUE_DATABASE_URL": db_url, "CATALOGUE_SECRET_KEY": TEST_SECRET,
                    "CATALOGUE_DATA_DIR": str(tmp_path / f"d{attempt}"),
                    "CATALOGUE_PORT": str(port), "CATALOGUE_HARVEST_SCHEDULER": "false"})
        proc = subprocess.Popen([sys.executable, "-m", "catalogue.cli", "serve"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_ready(port, proc)
        stop = threading.Event()

        def hammer(stop: threading.Event = stop, port: int = port) -> None:
            while not stop.is_set():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).read()
                except OSError:
                    pass

        threads = [threading.Thread(target=hammer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        finally:
            stop.set()
            for t in threads:
                t.join()
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0
