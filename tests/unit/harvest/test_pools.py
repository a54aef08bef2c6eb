"""Harvest worker pools: forked from a fork server that has loaded the workers' modules once."""

from __future__ import annotations

import os
import sys
import time
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
