"""Serving HTTP with one or several processes.

One Python process runs one request at a time in Python code (the interpreter lock), so one
``catalogue serve`` process uses about one core however many threads it has. With
``--processes N`` (``CATALOGUE_PROCESSES``) the command binds the listening socket once and
starts N-1 *worker* processes that accept connections on that same socket (the kernel hands
each new connection to one of them):

- the **primary** (the process started by the operator) owns everything that must run once:
  the embedded PostgreSQL if used, migrations, the search indexer (the only writer of the
  search indices: tantivy allows one writer per index) and the harvest scheduler. It serves
  requests too, and supervises the workers: a worker that dies is started again (at most
  ``MAX_RESTARTS`` times per ``RESTART_WINDOW`` seconds, then it is left down and logged).
- a **worker** connects to the same database (the primary passes its URL), reads the same data
  folder (secret, tantivy index: readers reopen what the indexer commits within about half a
  second) and only serves. It exits when the primary exits, even after a ``kill -9`` of the
  primary (``PR_SET_PDEATHSIG`` on Linux; elsewhere a thread checks its parent).

Requests never write to the search engine directly (writes go to PostgreSQL and its outbox),
so any process can serve any request.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from catalogue.errors import CatalogueError

log = logging.getLogger(__name__)

#: a worker that dies is restarted at most this many times per window (seconds)
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
#: seconds a worker is given to finish its requests when the primary stops
STOP_TIMEOUT = 10.0
#: the environment variable telling a worker its parent's pid
PARENT_ENV = "CATALOGUE_SERVE_PARENT"


def listen(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """Bind and listen (the caller passes the socket to waitress and to the workers)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CatalogueError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    family, kind, proto, _name, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise CatalogueError(
                f"port {port} on {host} is already in use; stop the other program or choose "
                "another port with --port / CATALOGUE_PORT"
            ) from None
        raise CatalogueError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return sock


#: waitress settings of `catalogue serve` and of the test server. waitress spools a response
#: larger than ``outbuf_overflow`` (default 1 MB) to a temporary file and reads it back to send
#: it; a DCAT page of 1,000 datasets is 3-8 MB, so every full page went through the disk. Kept
#: in memory up to 32 MB; ``outbuf_high_watermark`` (16 MB) still bounds what a connection
#: buffers before its application thread waits for the client.
SERVER_OPTIONS: dict[str, Any] = {"ident": "catalogue", "outbuf_overflow": 32 * 2**20}


def run_server(app: Any, sock: socket.socket, threads: int,
               ready: Callable[[], None] | None = None, runtime: Any = None) -> None:
    """Serve ``app`` with waitress on an already listening socket until interrupted
    (``runtime.settle()`` first, when given)."""
    from waitress import create_server

    if runtime is not None:
        runtime.settle()

    server = create_server(app, sockets=[sock], threads=threads,
                           clear_untrusted_proxy_headers=True, **SERVER_OPTIONS)
    if ready:
        ready()
    try:
        server.run()
    finally:
        server.close()


class WorkerPool:
    """The primary's worker processes: started on the shared socket, restarted when they die,
    stopped (SIGTERM, then SIGKILL after ``STOP_TIMEOUT``) with the primary."""

    def __init__(self, count: int, sock: socket.socket, argv: list[str],
                 env: dict[str, str]) -> None:
        self.count = count
        self.sock = sock
        self.argv = argv
        self.env = env
        self.procs: list[subprocess.Popen[bytes] | None] = [None] * count
        self.restarts: list[list[float]] = [[] for _ in range(count)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _spawn(self, slot: int) -> subprocess.Popen[bytes]:
        fd = self.sock.fileno()
        env = {**self.env, PARENT_ENV: str(os.getpid())}
        proc = subprocess.Popen(
            [*self.argv, "--fd", str(fd)],
            env=env, pass_fds=(fd,), stdin=subprocess.DEVNULL)
        log.info("serve worker %d started (pid %d)", slot + 1, proc.pid)
        return proc

    def start(self) -> None:
        with self._lock:
            for slot in range(self.count):
                self.procs[slot] = self._spawn(slot)
        self._thread = threading.Thread(target=self._supervise, daemon=True,
                                        name="catalogue-serve-supervisor")
        self._thread.start()

    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self.procs if p is not None and p.poll() is None]

    def _supervise(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stop.is_set():
                    return
                for slot, proc in enumerate(self.procs):
                    if proc is None or proc.poll() is None:
                        continue
                    now = time.monotonic()
                    recent = [t for t in self.restarts[slot] if now - t < RESTART_WINDOW]
                    self.restarts[slot] = recent
                    if len(recent) >= MAX_RESTARTS:
                        log.error("serve worker %d exited with %s and was restarted %d times "
                                  "in %.0f s; leaving it down", slot + 1, proc.returncode,
                                  len(recent), RESTART_WINDOW)
                        self.procs[slot] = None
                        continue
                    log.warning("serve worker %d (pid %d) exited with %s; starting it again",
                                slot + 1, proc.pid, proc.returncode)
                    recent.append(now)
                    self.procs[slot] = self._spawn(slot)

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            live = [p for p in self.procs if p is not None and p.poll() is None]
            for proc in live:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
            deadline = time.monotonic() + STOP_TIMEOUT
            for proc in live:
                try:
                    proc.wait(max(deadline - time.monotonic(), 0.1))
                except subprocess.TimeoutExpired:
                    log.warning("serve worker pid %d did not stop in %.0f s; killing it",
                                proc.pid, STOP_TIMEOUT)
                    proc.kill()
                    proc.wait()
        if self._thread is not None:
            self._thread.join(2.0)


def worker_argv(data_dir: str, config_file: str | None) -> list[str]:
    """The command line of a worker (the hidden ``catalogue serve-worker`` command)."""
    argv = [sys.executable, "-m", "catalogue.cli", "--data-dir", data_dir]
    if config_file:
        argv += ["--config", config_file]
    return [*argv, "serve-worker"]


def worker_env(config: Any, database_url: str) -> dict[str, str]:
    """A worker's environment: the primary's, with the database the primary uses (the embedded
    one's socket too), no harvest scheduler, and the settings the primary got on its command
    line (the address is part of the public base URL, hence of every IRI the export serves:
    every process must serve the same)."""
    from catalogue.config import SETTINGS

    env = {**os.environ, "CATALOGUE_DATABASE_URL": database_url,
           "CATALOGUE_HARVEST_SCHEDULER": "false"}
    for setting in SETTINGS:
        if config.sources.get(setting.name) == "command line" and setting.name != "data_dir":
            value = getattr(config, setting.name)
            env[setting.env] = ("true" if value else "false") if isinstance(value, bool) \
                else str(value)
    return env


def die_with_parent() -> bool:
    """Ask Linux to send SIGTERM when the primary dies (True when it will); exit at once if the
    primary is already gone."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    armed = False
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            armed = libc.prctl(1, signal.SIGTERM) == 0  # PR_SET_PDEATHSIG
    if parent and os.getppid() != parent:
        raise SystemExit(0)
    return armed


def watch_parent(interval: float = 1.0) -> None:
    """Where ``PR_SET_PDEATHSIG`` is not available: stop when the primary is gone."""
    parent = int(os.environ.get(PARENT_ENV, "0") or 0)
    if not parent:
        return

    def loop() -> None:
        while True:
            time.sleep(interval)
            if os.getppid() != parent:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    threading.Thread(target=loop, daemon=True, name="catalogue-parent-watch").start()
