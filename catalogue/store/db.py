"""PostgreSQL access: one psycopg connection pool, transactions, error translation.

Repositories receive a connection from :meth:`Database.transaction`; every statement uses bound
parameters. Connection failures become :class:`StoreUnavailable` (HTTP 503), so a database outage
is an answer, not a crash, and the pool reconnects by itself when the server returns.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from catalogue.errors import StoreUnavailable

log = logging.getLogger(__name__)

Connection = psycopg.Connection[dict[str, Any]]


def is_uuid(value: object) -> bool:
    """Whether ``value`` can be compared with a uuid column (checked before querying, so a bad
    id is a plain "not found" and never an SQL error that would abort the caller's
    transaction)."""
    if isinstance(value, uuid.UUID):
        return True
    try:
        uuid.UUID(str(value))
    except (ValueError, TypeError, AttributeError):
        return False
    return True


#: a connection given back to the pool less than this many seconds ago is handed out again
#: without a round trip to check it, as HikariCP does (``aliveBypassWindowMs``, 500 ms): it
#: answered then. One that broke since fails its request (503), and the pool replaces it.
CHECK_IDLE_AFTER = 0.5


def _returned(conn: psycopg.Connection[Any]) -> None:
    conn._catalogue_returned_at = time.monotonic()  # type: ignore[attr-defined]


def _check(conn: psycopg.Connection[Any]) -> None:
    """The pool's check before handing a connection out, unless it was in use just now."""
    returned = getattr(conn, "_catalogue_returned_at", None)
    if returned is None or time.monotonic() - returned >= CHECK_IDLE_AFTER:
        ConnectionPool.check_connection(conn)


def _configure(conn: psycopg.Connection[Any]) -> None:
    conn.row_factory = dict_row
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


class Database:
    """A pool of connections to the catalogue database."""

    def __init__(
        self, url: str, min_size: int = 1, max_size: int = 10, timeout: float = 5.0
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.pool: ConnectionPool[Any] = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=timeout,
            open=False,
            configure=_configure,
            check=_check,
            reset=_returned,
            kwargs={"connect_timeout": max(1, int(timeout)), "application_name": "catalogue"},
            name="catalogue",
        )

    def open(self, wait: bool = True) -> None:
        self.pool.open(wait=False)
        if wait:
            with self.connection() as conn:
                conn.execute("SELECT 1")

    def close(self) -> None:
        self.pool.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A pooled connection in autocommit-off mode; commits on success, rolls back on error."""
        try:
            with self.pool.connection(timeout=self.timeout) as conn:
                yield conn
        except PoolTimeout:
            raise StoreUnavailable() from None
        except psycopg.OperationalError as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise StoreUnavailable() from None

    transaction = connection

    @contextmanager
    def statement(self) -> Iterator[Connection]:
        """A pooled connection in autocommit mode, for statements that are atomic on their
        own (a read of one row): no BEGIN and no COMMIT, two round trips fewer than a
        transaction."""
        with self.connection() as conn:
            conn.autocommit = True
            try:
                yield conn
            finally:
                with suppress(psycopg.Error):  # a broken connection is replaced by the pool
                    conn.autocommit = False

    def ping(self) -> dict[str, Any]:
        """Check the database answers; return details for ``/readyz``."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version') AS version, "
                "(SELECT coalesce(max(version), 0) FROM schema_migrations) AS schema_version"
            ).fetchone()
        assert row is not None
        return {"version": row["version"], "schema_version": row["schema_version"]}
