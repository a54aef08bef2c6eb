"""PostgreSQL access: one psycopg connection pool, transactions, error translation.

Repositories receive a connection from :meth:`Database.transaction`; every statement uses bound
parameters. Connection failures become :class:`StoreUnavailable` (HTTP 503), so a database outage
is an answer, not a crash, and the pool reconnects by itself when the server returns.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
            check=ConnectionPool.check_connection,
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

    def ping(self) -> dict[str, Any]:
        """Check the database answers; return details for ``/readyz``."""
        with self.connection() as conn:
            row = conn.execute(
                "SELECT current_setting('server_version') AS version, "
                "(SELECT coalesce(max(version), 0) FROM schema_migrations) AS schema_version"
            ).fetchone()
        assert row is not None
        return {"version": row["version"], "schema_version": row["schema_version"]}
