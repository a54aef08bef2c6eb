"""The connection pool on a real PostgreSQL: statements without a transaction, and the check a
connection gets before it is handed out again (skipped when it was in use just now)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.pq import TransactionStatus

import catalogue.store.db as db_module
from catalogue.errors import StoreUnavailable
from catalogue.store.db import Database


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url, min_size=1, max_size=1)
    db.open()
    yield db
    db.close()


def _terminate(db_url: str, pid: int) -> None:
    """End a server process as an administrator (or a server restart) would, and wait until
    it is gone."""
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        for _ in range(200):
            if admin.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s",
                             (pid,)).fetchone() is None:
                return
            time.sleep(0.01)
    raise AssertionError(f"server process {pid} still runs")


def test_a_statement_runs_outside_a_transaction_and_the_next_user_gets_one(
        database: Database) -> None:
    with database.statement() as conn:
        conn.execute("SELECT 1").fetchone()
        assert conn.info.transaction_status == TransactionStatus.IDLE  # nothing left open
    with database.transaction() as conn:  # the same (only) connection, in transaction mode
        assert not conn.autocommit
        conn.execute("SELECT 1").fetchone()
        assert conn.info.transaction_status == TransactionStatus.INTRANS
    # a failing statement leaves nothing to roll back and the connection usable
    with pytest.raises(psycopg.errors.UndefinedTable), database.statement() as conn:
        conn.execute("SELECT * FROM no_such_table")
    with database.transaction() as conn:
        assert not conn.autocommit
        assert conn.execute("SELECT 2 AS two").fetchone() == {"two": 2}


def test_a_connection_idle_for_a_while_is_checked_and_one_in_use_just_now_is_not(
        database: Database, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with database.transaction() as conn:
        first = conn.info.backend_pid
    _terminate(db_url, first)
    # handed out again at once (as HikariCP, within half a second of its last use): not
    # checked, so this request fails with a clear 503 and the pool replaces the connection
    assert db_module.CHECK_IDLE_AFTER == 0.5
    with pytest.raises(StoreUnavailable), database.transaction() as conn:
        conn.execute("SELECT 1")
    with database.transaction() as conn:
        second = conn.info.backend_pid
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
    assert second != first
    # idle past the window: checked before it is handed out, found broken, replaced; the
    # request never sees it
    _terminate(db_url, second)
    monkeypatch.setattr(db_module, "CHECK_IDLE_AFTER", 0.0)
    with database.transaction() as conn:
        assert conn.execute("SELECT 1 AS one").fetchone() == {"one": 1}
        assert conn.info.backend_pid not in (first, second)
