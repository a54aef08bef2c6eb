"""Worker processes for the harvesters that parse and validate in parallel (DCAT, FHIR).

Workers are forked from a *fork server*: a process started by the first harvest of a catalogue
process that needs workers, and kept until it exits (about 90 MB). It imports the harvesters'
worker modules and warms their models once (:mod:`catalogue.harvest.preload`, about 0.5 s of
CPU). A pool then costs one ``fork`` per worker, about 10 ms. With ``spawn`` each worker of
each run was a fresh interpreter importing rdflib or ``fhir.resources`` and the command line
again and building their validators: 0.1-0.3 s of CPU per worker, on a machine whose two cores
the run itself needs.

Plain ``fork`` is never used: the catalogue's own process runs threads (connection pool,
scheduler, web server), and a fork could copy a lock one of them holds. The fork server is
single-threaded. Where there is no fork server (not POSIX), workers are spawned as before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.connection import wait
from multiprocessing.context import BaseContext
from typing import Any

log = logging.getLogger(__name__)

#: imported (and warmed) by the fork server before it forks any worker
PRELOAD = ("catalogue.harvest.preload",)


def context() -> BaseContext:
    """The start method of harvest workers: the fork server where there is one."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # effective only before the server starts (it is per process; nothing else here uses it)
    ctx.set_forkserver_preload(list(PRELOAD))
    return ctx


def prepare() -> None:
    """Start the fork server now, if it is not running, without waiting for its imports: a
    harvest that will need workers calls this a little ahead (the DCAT harvester while it
    fetches the first page its workers parse), so that the server warms up meanwhile. A pool
    starts it anyway."""
    ctx = context()
    if ctx.get_start_method() != "forkserver":
        return
    from multiprocessing import forkserver

    try:
        forkserver.ensure_running()
    except OSError as exc:  # the pool will try again, and fail with a clear error if it must
        log.warning("could not start the harvest workers' fork server: %s", exc)


def pool(workers: int, initializer: Callable[..., Any],
         initargs: tuple[Any, ...]) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes, each set up by ``initializer(*initargs)``; a worker
    exits when the process that made the pool dies (:func:`_start`)."""
    return ProcessPoolExecutor(workers, mp_context=context(), initializer=_start,
                               initargs=(initializer, initargs))


def _start(initializer: Callable[..., Any], initargs: tuple[Any, ...]) -> None:
    """Worker set-up: exit when the pool's process dies, then ``initializer(*initargs)``.

    A pool's worker waits for its next task on a queue whose other end it holds itself, so it
    never sees its pool's process die. A harvest killed with SIGKILL (tested) left its workers
    waiting forever, and with them the fork server, which lives while any of its children does.
    The parent's sentinel (a pipe end the pool's process holds) tells: a thread waits on it.
    """
    parent = multiprocessing.parent_process()
    if parent is not None:
        sentinel = parent.sentinel

        def watch() -> None:
            wait([sentinel])
            os._exit(1)  # the pool's process is gone: nobody wants what this worker does

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    initializer(*initargs)
