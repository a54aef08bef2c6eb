"""``catalogue serve`` in its own process on a kept benchmark catalogue, as deployed (the load
and cohort benchmarks)."""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

#: the benchmarks ask more questions than a budget allows: timing, not privacy, is measured
BENCH_BUDGET = "1e12"


@contextlib.contextmanager
def serve_process(folder: Path, port: int, workers: int, processes: int = 1,
                  settings: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """``catalogue serve`` on the catalogue in ``folder`` (``settings``: more ``CATALOGUE_*``
    variables, over the defaults here); stopped (SIGTERM, then SIGKILL) on exit, whatever
    happens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGUE_")}
    env.update({"CATALOGUE_DATA_DIR": str(folder), "CATALOGUE_COHORT_BUDGET": BENCH_BUDGET,
                "CATALOGUE_COHORT_ORGANISATION_BUDGET": BENCH_BUDGET,
                "CATALOGUE_HARVEST_SCHEDULER": "false", "CATALOGUE_LOG_LEVEL": "WARNING",
                "CATALOGUE_SEARCH_INDEX_PREFIX": os.environ.get(
                    "CATALOGUE_SEARCH_INDEX_PREFIX", "catalogue-")})
    if os.environ.get("CATALOGUE_DATABASE_URL"):
        env["CATALOGUE_DATABASE_URL"] = os.environ["CATALOGUE_DATABASE_URL"]
    env.update(settings or {})
    folder.mkdir(parents=True, exist_ok=True)
    log = open(folder / "serve.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "catalogue.cli", "serve", "--port", str(port),
         "--workers", str(workers), "--processes", str(processes)],
        env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def wait_ready(port: int, proc: subprocess.Popen[bytes], folder: Path,
               timeout: float = 120.0) -> None:
    """Wait until the server in ``proc`` answers ``/readyz``; its log's tail if it exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (folder / "serve.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"catalogue serve exited with {proc.returncode}:\n{tail}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"catalogue serve was not ready within {timeout:.0f} s")
