"""Forward-only migrations: ``migrations/NNNN_name.sql`` applied in order, one transaction each.

Each applied file is recorded with its SHA-256. If an applied file was edited afterwards (or
vanished), :func:`check` and :func:`upgrade` refuse to go on: the schema in the database would no
longer be what the files say. A PostgreSQL advisory lock keeps concurrent upgrades apart.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import psycopg

from catalogue.errors import MigrationError
from catalogue.resources import resource_dir
from catalogue.store.db import Database

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x43415441  # "CATA"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path | None = None) -> list[Migration]:
    """All migration files, ordered; a misnamed or duplicate-numbered file is an error."""
    directory = directory or resource_dir("migrations")
    found: dict[int, Migration] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix != ".sql":
            continue
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files must be named NNNN_name.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"{path}: version {version} is used twice")
        found[version] = Migration(version, match.group(2), path, path.read_text())
    return [found[v] for v in sorted(found)]


_BOOTSTRAP = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


def _applied(conn: psycopg.Connection[dict[str, object]]) -> dict[int, dict[str, object]]:
    rows = conn.execute("SELECT version, name, checksum FROM schema_migrations").fetchall()
    return {int(str(r["version"])): r for r in rows}


def _verify(applied: dict[int, dict[str, object]], files: list[Migration]) -> list[Migration]:
    by_version = {m.version: m for m in files}
    for version, row in sorted(applied.items()):
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"migration {version:04d}_{row['name']} was applied to the database but its "
                "file is missing; restore it (migrations are forward-only)"
            )
        if migration.checksum != row["checksum"]:
            raise MigrationError(
                f"migration {migration.path.name} was edited after it was applied "
                f"(checksum {str(row['checksum'])[:12]}… recorded, {migration.checksum[:12]}… "
                "on disk); restore the original file and put changes in a new migration"
            )
    return [m for m in files if m.version not in applied]


def pending(db: Database, directory: Path | None = None) -> list[Migration]:
    """Migrations not yet applied (after verifying the applied ones are untouched)."""
    files = discover(directory)
    with db.transaction() as conn:
        conn.execute(_BOOTSTRAP)
        return _verify(_applied(conn), files)


def upgrade(db: Database, directory: Path | None = None) -> list[Migration]:
    """Apply pending migrations in order; return the ones applied."""
    files = discover(directory)
    done: list[Migration] = []
    with db.transaction() as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        conn.commit()
        try:
            conn.execute(_BOOTSTRAP)
            conn.commit()
            todo = _verify(_applied(conn), files)
            conn.commit()
            for migration in todo:
                try:
                    with conn.transaction():
                        conn.execute(migration.sql.encode())
                        conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) "
                            "VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    raise MigrationError(
                        f"migration {migration.path.name} failed and was rolled back: "
                        f"{exc.diag.message_primary or exc}"
                    ) from None
                conn.commit()
                log.info("applied migration %s", migration.path.name)
                done.append(migration)
        finally:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
            conn.commit()
    return done
