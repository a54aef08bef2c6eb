"""Audit log and indexing outbox: append-only tables written inside the caller's transaction."""

from __future__ import annotations

from typing import Any

from psycopg.types.json import Jsonb

from catalogue.model.identity import Identity
from catalogue.store.db import Connection


def audit(
    conn: Connection,
    identity: Identity,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record who did what. ``details`` carries ids and counts, never payloads."""
    conn.execute(
        "INSERT INTO audit_log (actor_user_id, actor, organisation_id, action, target_type, "
        "target_id, details) VALUES (%s, %s, %s, %s, %s, %s, %s)",
        (
            identity.user_id if identity.user_id and identity.username != "system" else None,
            identity.username or "anonymous",
            identity.organisation_id,
            action,
            target_type,
            target_id,
            Jsonb(details or {}),
        ),
    )


def enqueue(conn: Connection, entity: str, entity_ids: list[str]) -> None:
    """Ask the indexer to (re)apply these entities from PostgreSQL to the search engine."""
    if not entity_ids:
        return
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO outbox (entity, entity_id) VALUES (%s, %s)",
            [(entity, eid) for eid in entity_ids],
        )
    conn.execute("SELECT pg_notify('catalogue_outbox', %s)", (entity,))


def outbox_lag(conn: Connection) -> tuple[int, float]:
    """(pending outbox entries, age in seconds of the oldest; 0 when none waits)."""
    row = conn.execute(
        "SELECT count(*) AS pending, "
        "coalesce(extract(epoch FROM now() - min(created_at)), 0) AS oldest FROM outbox"
    ).fetchone()
    assert row is not None
    return int(row["pending"]), float(row["oldest"])


def list_audit(
    conn: Connection, limit: int = 100, action: str | None = None, before_id: int | None = None
) -> list[dict[str, Any]]:
    clauses, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
    if action:
        clauses.append("action = %s")
        params.append(action)
    if before_id:
        clauses.append("id < %s")
        params.append(before_id)
    params.append(limit)
    rows = conn.execute(
        f"SELECT * FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT %s",
        params,
    ).fetchall()
    return [dict(r) for r in rows]
