"""Harvest worker pools: forked from a fork server that has loaded the workers' modules once."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from catalogue.harvest import pools

_SEEN: dict[str, Any] = {}


def _init(tag: str) -> None:
    # what the worker holds before it has run anything of its own
    _SEEN.update(tag=tag, modules={name for name in (
        "catalogue.harvest.preload", "catalogue.fhir.worker", "catalogue.harvest.dcat",
        "catalogue.cli", "fhir.resources.R4B.imagingstudy", "fhir.resources.imagingstudy")
        if name in sys.modules})


def _report(_: int) -> tuple[str, set[str], int, int]:
    time.sleep(0.05)  # both workers take a task
    return _SEEN["tag"], _SEEN["modules"], os.getpid(), os.getppid()


def test_workers_are_forked_from_a_server_that_loaded_and_warmed_their_modules() -> None:
    assert pools.context().get_start_method() == "forkserver"
    pools.prepare()
    pools.prepare()  # idempotent
    with pools.pool(2, _init, ("first",)) as executor:
        first = list(executor.map(_report, range(4)))
    with pools.pool(2, _init, ("second",)) as executor:
        second = list(executor.map(_report, range(4)))
    for tag, results in (("first", first), ("second", second)):
        assert {r[0] for r in results} == {tag}  # each pool's initializer ran in its workers
        for _, modules, pid, parent in results:
            # loaded before the worker ran anything: the server preloaded them
            assert modules == {"catalogue.harvest.preload", "catalogue.fhir.worker",
                               "catalogue.harvest.dcat", "catalogue.cli",
                               "fhir.resources.R4B.imagingstudy", "fhir.resources.imagingstudy"}
            assert pid != os.getpid()
            assert parent != os.getpid()  # the fork server's child, not ours
    servers = {r[3] for r in first + second}
    assert len(servers) == 1  # one server for every pool of this process
    assert {r[2] for r in first}.isdisjoint({r[2] for r in second})  # new workers per pool


_KILLED_CLIENT = """
import os, sys, time
from catalogue.harvest import pools

def nothing():
    pass

def ids(_):
    time.sleep(0.2)  # both workers take one
    return os.getpid(), os.getppid()

if __name__ == "__main__":
    executor = pools.pool(2, nothing, ())
    print(sorted(set(executor.map(ids, range(2)))), flush=True)
    time.sleep(600)
"""


def _gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_workers_and_their_fork_server_exit_when_the_pools_process_is_killed(
        tmp_path: Path) -> None:
    """A harvest killed with SIGKILL left its workers waiting for tasks forever, and with them
    the fork server (which lives while any of its children does)."""
    script = tmp_path / "client.py"
    script.write_text(_KILLED_CLIENT)
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[3])
    try:
        assert proc.stdout is not None
        found = ast.literal_eval(proc.stdout.readline())
        workers = [pid for pid, _ in found]
        servers = {parent for _, parent in found}
        assert len(workers) == 2 and len(servers) == 1 and proc.pid not in servers
        assert not any(_gone(pid) for pid in workers + list(servers))
    finally:
        proc.kill()
        proc.wait(30)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not all(
            _gone(pid) for pid in workers + list(servers)):
        time.sleep(0.1)
    assert [pid for pid in workers + list(servers) if not _gone(pid)] == []
