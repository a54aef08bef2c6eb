"""The backup/restore drill, as the operations guide tells an operator to run it: `catalogue db
backup` of a populated catalogue (datasets, study-level records, identities, privacy-budget
spending and resets, the audit logs, harvest runs, export fragments), `catalogue db restore` into
an empty database with a fresh data folder (so the search index is rebuilt from the restored
database), then every table compared row for row with the original, the sequences compared (new
rows cannot collide with restored ones), search totals equal, and the same cohort question
answered identically (same secret, same data version) with the same remaining budget.

Real PostgreSQL (the session server), the real pg_dump/pg_restore, the real CLI in process.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from catalogue.cli import main
from catalogue.model.identity import SYSTEM, Identity, Role, User
from catalogue.runtime import Runtime
from catalogue.store.audit import enqueue
from catalogue.store.exports import Selection
from tests.conftest import TEST_SECRET, make_config
from tests.integration.cohorts import LUNG, stage
from tests.integration.test_cohort_counts import researcher

QUESTION = {"criteria": {"all_of": [{"condition": [LUNG]}, {"modality": ["CT"]}]},
            "group_by": ["dataset"]}


def _env(db_url: str, data_dir: Path) -> dict[str, str]:
    return {"CATALOGUE_DATABASE_URL": db_url, "CATALOGUE_DATA_DIR": str(data_dir),
            "CATALOGUE_SECRET_KEY": TEST_SECRET, "CATALOGUE_ENV": "test"}


def _cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def snapshot(url: str) -> dict[str, Any]:
    """Every table's row count and a digest of all its rows (order-independent), and every
    sequence's position."""
    out: dict[str, Any] = {}
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' "
            "AND table_type = 'BASE TABLE' ORDER BY 1")]
        for table in tables:
            row = conn.execute(
                f'SELECT count(*), md5(coalesce(string_agg(t::text, E\'\\n\' ORDER BY t::text), '
                f"'')) FROM \"{table}\" t").fetchone()
            assert row is not None
            out[table] = (row[0], row[1])
        for (name,) in conn.execute(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = 'public' ORDER BY 1"):
            row = conn.execute(f'SELECT last_value, is_called FROM "{name}"').fetchone()
            out[f"sequence {name}"] = row
    return out


def _exact(rt: Runtime, who: Identity) -> dict[str, Any]:
    """The true counts of QUESTION (the test switches noise off; the product never does)."""
    rt.cohorts.policy = dataclasses.replace(rt.cohorts.policy, exact=True, budget=1e9,
                                            organisation_budget=1e9)
    answer = rt.cohorts.count(who, QUESTION)
    return {"total": answer["total"], "groups": answer["groups"]}


def _identity(rt: Runtime, username: str) -> Identity:
    user = rt.identities.get_user(SYSTEM, username)
    return Identity(user_id=user.id, username=user.username, role=user.role,
                    organisation_id=user.organisation_id)


@pytest.mark.slow
def test_backup_restore_drill_restores_an_identical_catalogue(
        tmp_path: Path, db_url: str, empty_db_url: str) -> None:
    # a populated catalogue
    original = Runtime(make_config(tmp_path / "a", db_url)).start()
    try:
        staged = stage(original, per_dataset=40)
        with original.database.transaction() as conn:
            enqueue(conn, "dataset", staged.datasets)
        assert original.indexer is not None
        original.indexer.drain()
        who = researcher(original)
        original.cohorts.count(who, QUESTION)
        original.cohorts.count(who, {"criteria": {"all_of": [{"modality": ["MR"]}]}})
        other = original.identities.create_user(
            SYSTEM, User(id="", username="olga", role=Role.RESEARCHER))
        original.cohorts.count(_identity(original, other.username), QUESTION)
        original.cohorts.reset(SYSTEM, username="olga", reason="drill: new project")
        b"".join(original.export.dump("turtle", Selection()))  # fills the export fragment cache
        searched = original.datasets.search(SYSTEM, filters={"organisation_id": ["prov-a"]})
        assert searched.total == 2
        exact = _exact(original, who)
        spent = original.cohorts.budget(who)["researcher"]["spent"]
        assert spent > 0
    finally:
        original.close()
    before = snapshot(db_url)
    assert before["subjects"][0] > 150 and before["imaging_studies"][0] > 200
    assert before["cohort_queries"][0] == 4 and before["cohort_budget_resets"][0] == 1
    assert before["audit_log"][0] > 0
    assert before["dataset_exports"][0] == 4 * len(staged.datasets)  # one per format

    # backup, then restore into an empty database with a fresh data folder
    backup_file = tmp_path / "backups" / "catalogue.dump"
    result = _cli(_env(db_url, tmp_path / "a" / "data"), "db", "backup", "-o", str(backup_file))
    assert result.exit_code == 0, result.output
    assert backup_file.is_file() and not backup_file.with_name("catalogue.dump.partial").exists()
    assert f"subjects {before['subjects'][0]}" in result.output

    restored_dir = tmp_path / "b" / "data"
    env = _env(empty_db_url, restored_dir)
    result = _cli(env, "db", "restore", "--no-rebuild-index", str(backup_file))
    assert result.exit_code == 0, result.output
    assert "restored schema version" in result.output and "switched to" not in result.output
    after = snapshot(empty_db_url)
    assert after == before, {k: (before.get(k), after.get(k)) for k in before.keys() | after.keys()
                             if before.get(k) != after.get(k)}

    # the search indices are derived: rebuilt from the restored database
    result = _cli(env, "index", "rebuild")
    assert result.exit_code == 0, result.output
    assert result.output.count("switched to") == 2
    rebuilt = snapshot(empty_db_url)
    changed = {k for k in before if rebuilt[k] != before[k]}
    # only the subjects' data version moves (a rebuilt index gets fresh cohort noise, never the
    # same seed over possibly different documents)
    assert changed == {"indexer_state"}

    restored = Runtime(make_config(tmp_path / "b", empty_db_url)).start()
    try:
        found = restored.datasets.search(SYSTEM, filters={"organisation_id": ["prov-a"]})
        assert found.total == searched.total
        assert {d.id for d in found.items} == {d.id for d in searched.items}
        again = _identity(restored, "rita")
        assert restored.cohorts.budget(again)["researcher"]["spent"] == spent  # survived
        assert restored.cohorts.budget(_identity(restored, "olga"))["researcher"]["spent"] == 0
        assert _exact(restored, again) == exact  # the same records answer the same counts
    finally:
        restored.close()


def test_restore_refuses_a_non_empty_database_and_a_broken_file(
        tmp_path: Path, db_url: str, empty_db_url: str) -> None:
    backup_file = tmp_path / "catalogue.dump"
    assert _cli(_env(db_url, tmp_path / "a"), "db", "backup", "-o", str(backup_file)).exit_code == 0
    before = snapshot(db_url)

    # into the live database: refused, nothing touched
    result = _cli(_env(db_url, tmp_path / "a"), "db", "restore", str(backup_file))
    assert result.exit_code == 2 and "not empty" in result.output
    assert snapshot(db_url) == before

    # a truncated archive: pg_restore fails, and (one transaction) the target stays empty
    broken = tmp_path / "broken.dump"
    broken.write_bytes(backup_file.read_bytes()[: backup_file.stat().st_size // 2])
    result = _cli(_env(empty_db_url, tmp_path / "b"), "db", "restore", str(broken))
    assert result.exit_code == 2 and "pg_restore failed" in result.output
    assert snapshot(empty_db_url) == {}

    # not a backup at all
    junk = tmp_path / "junk.dump"
    junk.write_text("DROP TABLE datasets;")
    result = _cli(_env(empty_db_url, tmp_path / "b"), "db", "restore", str(junk))
    assert result.exit_code == 2 and "not a catalogue backup" in result.output
