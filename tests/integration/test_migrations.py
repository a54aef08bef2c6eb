"""The migration runner: ordered, checksummed, transactional, refusing tampered history."""

from __future__ import annotations

import shutil
from pathlib import Path

import psycopg
import pytest

from catalogue.errors import MigrationError
from catalogue.resources import resource_dir
from catalogue.store import migrations
from catalogue.store.db import Database


@pytest.fixture
def db(empty_db_url: str) -> Database:
    database = Database(empty_db_url)
    database.open()
    yield database  # type: ignore[misc]
    database.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    target = tmp_path / "migrations"
    shutil.copytree(resource_dir("migrations"), target)
    return target


def _tables(db: Database) -> set[str]:
    with db.transaction() as conn:
        return {
            r["tablename"]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }


def test_upgrade_applies_in_order_and_records_checksums(db: Database, folder: Path) -> None:
    applied = migrations.upgrade(db, folder)
    assert [m.version for m in applied] == sorted(m.version for m in applied)
    assert {
        "organisations",
        "users",
        "api_tokens",
        "datasets",
        "distributions",
        "subjects",
        "imaging_studies",
        "conditions",
        "harvest_sources",
        "harvest_runs",
        "harvest_record_errors",
        "outbox",
        "audit_log",
    } <= _tables(db)
    with db.transaction() as conn:
        rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    assert {r["version"]: r["checksum"] for r in rows} == {
        m.version: m.checksum for m in migrations.discover(folder)
    }
    assert migrations.upgrade(db, folder) == []  # idempotent


def test_edited_migration_is_refused(db: Database, folder: Path) -> None:
    migrations.upgrade(db, folder)
    first = sorted(folder.glob("0001_*.sql"))[0]
    first.write_text(first.read_text() + "\n-- sneaky edit\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrations.upgrade(db, folder)
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrations.pending(db, folder)


def test_missing_applied_file_is_refused(db: Database, folder: Path) -> None:
    migrations.upgrade(db, folder)
    (folder / "9998_extra.sql").write_text("CREATE TABLE extra (id int);")
    migrations.upgrade(db, folder)
    (folder / "9998_extra.sql").unlink()
    with pytest.raises(MigrationError, match="file is missing"):
        migrations.upgrade(db, folder)


def test_failing_migration_leaves_nothing_half_applied(db: Database, folder: Path) -> None:
    migrations.upgrade(db, folder)
    (folder / "9999_half.sql").write_text(
        "CREATE TABLE half_one (id int);\nCREATE TABLE half_two (id nonexistent_type);"
    )
    with pytest.raises(MigrationError, match="9999_half.sql failed and was rolled back"):
        migrations.upgrade(db, folder)
    assert "half_one" not in _tables(db)
    with db.transaction() as conn:
        versions = [r["version"] for r in conn.execute("SELECT version FROM schema_migrations")]
    assert 9999 not in versions


def test_badly_named_or_duplicate_files_are_refused(folder: Path) -> None:
    (folder / "2_bad.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_name.sql"):
        migrations.discover(folder)
    (folder / "2_bad.sql").unlink()
    (folder / "0001_again.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="used twice"):
        migrations.discover(folder)


def test_concurrent_upgrades_apply_once(empty_db_url: str, folder: Path) -> None:
    import threading

    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        database = Database(empty_db_url)
        database.open()
        try:
            results.append(len(migrations.upgrade(database, folder)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            database.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(results) == [0, 0, len(migrations.discover(folder))]
    with psycopg.connect(empty_db_url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(
            migrations.discover(folder)
        )
