"""Queries behind the OAI-PMH provider that the export queries do not cover: the sets
(organisations with records) and the names of organisations."""

from __future__ import annotations

from catalogue.store.db import Connection
from catalogue.store.exports import Selection


class OaiRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def sets(self) -> list[tuple[str, str]]:
        """(id, name) of every organisation with at least one record (a published dataset, or
        one published once), ordered by id."""
        where, params = Selection(include_deleted=True).where()
        rows = self.conn.execute(
            "SELECT o.id, o.name FROM organisations o WHERE EXISTS "
            f"(SELECT 1 FROM datasets d WHERE d.organisation_id = o.id AND {where}) ORDER BY o.id",
            params,
        ).fetchall()
        return [(str(r["id"]), str(r["name"])) for r in rows]

    def organisation_names(self, ids: list[str]) -> dict[str, str]:
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT id, name FROM organisations WHERE id = ANY(%s)", (ids,)
        ).fetchall()
        return {str(r["id"]): str(r["name"]) for r in rows}
