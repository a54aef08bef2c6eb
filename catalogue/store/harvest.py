"""Harvest sources, runs and per-record errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from catalogue.errors import NotFound, ValidationError
from catalogue.store.db import Connection, is_uuid


@dataclass
class HarvestSource:
    id: str
    organisation_id: str
    kind: str
    url: str
    name: str = ""
    schedule: str | None = None
    validation_mode: str = "lenient"
    dataset_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    allow_private: bool = False
    enabled: bool = True
    state: dict[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    next_run_at: datetime | None = None
    last_run_at: datetime | None = None


@dataclass
class HarvestRun:
    id: str
    source_id: str | None
    organisation_id: str
    kind: str
    status: str
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    counts: dict[str, int]
    error: str | None


def _source(row: dict[str, Any]) -> HarvestSource:
    return HarvestSource(
        id=str(row["id"]),
        organisation_id=row["organisation_id"],
        kind=row["kind"],
        url=row["url"],
        name=row["name"],
        schedule=row["schedule"],
        validation_mode=row["validation_mode"],
        dataset_id=str(row["dataset_id"]) if row["dataset_id"] else None,
        config=row["config"],
        allow_private=row["allow_private"],
        enabled=row["enabled"],
        state=row.get("state") or {},
        created_at=row["created_at"],
        next_run_at=row["next_run_at"],
        last_run_at=row["last_run_at"],
    )


def _run(row: dict[str, Any]) -> HarvestRun:
    return HarvestRun(
        id=str(row["id"]),
        source_id=str(row["source_id"]) if row["source_id"] else None,
        organisation_id=row["organisation_id"],
        kind=row["kind"],
        status=row["status"],
        dry_run=row["dry_run"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        counts=row["counts"],
        error=row["error"],
    )


class HarvestRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    # -- sources ------------------------------------------------------------------------------
    def create_source(self, s: HarvestSource) -> HarvestSource:
        try:
            row = self.conn.execute(
                "INSERT INTO harvest_sources (organisation_id, kind, name, url, schedule, "
                "validation_mode, dataset_id, config, allow_private, enabled, next_run_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
                (
                    s.organisation_id,
                    s.kind,
                    s.name,
                    s.url,
                    s.schedule,
                    s.validation_mode,
                    s.dataset_id,
                    Jsonb(s.config),
                    s.allow_private,
                    s.enabled,
                    s.next_run_at,
                ),
            ).fetchone()
        except psycopg.errors.ForeignKeyViolation as exc:
            if "dataset" in (exc.diag.constraint_name or ""):
                raise ValidationError(
                    f"unknown dataset {s.dataset_id!r} for this source") from None
            raise ValidationError(
                f"unknown organisation {s.organisation_id!r} for this source: create it first "
                "(catalogue orgs create)") from None
        assert row is not None
        return _source(row)

    def get_source(self, source_id: str, for_update: bool = False) -> HarvestSource:
        row = self.conn.execute(
            "SELECT * FROM harvest_sources WHERE id = %s" + (" FOR UPDATE" if for_update else ""),
            (source_id,),
        ).fetchone() if is_uuid(source_id) else None
        if row is None:
            raise NotFound(f"harvest source {source_id!r} not found")
        return _source(row)

    #: every column but ``state`` (a big source's page validators and identifiers, megabytes)
    _LISTED = ("id, organisation_id, kind, name, url, schedule, validation_mode, dataset_id, "
               "config, allow_private, enabled, created_at, next_run_at, last_run_at")

    def list_sources(self, organisation_id: str | None = None) -> list[HarvestSource]:
        """The sources (of one organisation), without their run state (``state`` is ``{}``):
        listing them never reads what a run needs."""
        if organisation_id:
            rows = self.conn.execute(
                f"SELECT {self._LISTED} FROM harvest_sources WHERE organisation_id = %s "
                "ORDER BY created_at", (organisation_id,),
            ).fetchall()
        else:
            rows = self.conn.execute(
                f"SELECT {self._LISTED} FROM harvest_sources ORDER BY created_at").fetchall()
        return [_source(r) for r in rows]

    #: what can change on a registered source (kind, organisation and target dataset cannot)
    UPDATABLE = ("name", "url", "schedule", "validation_mode", "config", "allow_private",
                 "enabled")

    def update_source(self, source: HarvestSource, reset_state: bool) -> HarvestSource:
        """Write ``source``'s updatable fields and ``next_run_at``; ``reset_state`` forgets the
        page validators and cursors (another URL)."""
        row = self.conn.execute(
            "UPDATE harvest_sources SET name = %s, url = %s, schedule = %s, "
            "validation_mode = %s, config = %s, allow_private = %s, enabled = %s, "
            "next_run_at = %s, state = CASE WHEN %s THEN '{}'::jsonb ELSE state END "
            "WHERE id = %s RETURNING *",
            (source.name, source.url, source.schedule, source.validation_mode,
             Jsonb(source.config), source.allow_private, source.enabled, source.next_run_at,
             reset_state, source.id),
        ).fetchone()
        if row is None:
            raise NotFound(f"harvest source {source.id!r} not found")
        return _source(row)

    def delete_source(self, source_id: str) -> None:
        """Delete a source: its datasets and records lose their source, its runs are kept."""
        self.conn.execute("DELETE FROM harvest_sources WHERE id = %s", (source_id,))

    def due_sources(self) -> list[HarvestSource]:
        rows = self.conn.execute(
            "SELECT * FROM harvest_sources WHERE enabled AND schedule IS NOT NULL "
            "AND (next_run_at IS NULL OR next_run_at <= now()) ORDER BY next_run_at NULLS FIRST"
        ).fetchall()
        return [_source(r) for r in rows]

    def save_state(
        self, source_id: str, state: dict[str, Any], next_run_at: datetime | None
    ) -> None:
        self.conn.execute(
            "UPDATE harvest_sources SET state = %s, last_run_at = now(), next_run_at = %s "
            "WHERE id = %s",
            (Jsonb(state), next_run_at, source_id),
        )

    # -- runs ---------------------------------------------------------------------------------
    def start_run(
        self, source_id: str | None, organisation_id: str, kind: str, dry_run: bool, pid: int
    ) -> HarvestRun:
        row = self.conn.execute(
            "INSERT INTO harvest_runs (source_id, organisation_id, kind, dry_run, pid) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING *",
            (source_id, organisation_id, kind, dry_run, pid),
        ).fetchone()
        assert row is not None
        return _run(row)

    def heartbeat(self, run_id: str, counts: dict[str, int]) -> None:
        self.conn.execute(
            "UPDATE harvest_runs SET heartbeat_at = now(), counts = %s WHERE id = %s",
            (Jsonb(counts), run_id),
        )

    def finish_run(
        self, run_id: str, status: str, counts: dict[str, int], error: str | None = None,
        complete: bool = True,
    ) -> HarvestRun:
        """``complete=False``: the run read only part of its source (it still counts as
        completed, but the next incremental run starts from an earlier complete one)."""
        row = self.conn.execute(
            "UPDATE harvest_runs SET status = %s, counts = %s, error = %s, finished_at = now(), "
            "heartbeat_at = now(), complete = %s WHERE id = %s RETURNING *",
            (status, Jsonb(counts), error, complete, run_id),
        ).fetchone()
        assert row is not None
        return _run(row)

    def get_run(self, run_id: str) -> HarvestRun:
        row = self.conn.execute(
            "SELECT * FROM harvest_runs WHERE id = %s", (run_id,)
        ).fetchone() if is_uuid(run_id) else None
        if row is None:
            raise NotFound(f"harvest run {run_id!r} not found")
        return _run(row)

    def list_runs(self, source_id: str, limit: int = 50) -> list[HarvestRun]:
        rows = self.conn.execute(
            "SELECT * FROM harvest_runs WHERE source_id = %s ORDER BY started_at DESC LIMIT %s",
            (source_id, limit),
        ).fetchall()
        return [_run(r) for r in rows]

    def last_completed(self, source_id: str) -> HarvestRun | None:
        row = self.conn.execute(
            "SELECT * FROM harvest_runs WHERE source_id = %s AND status = 'completed' "
            "AND complete AND NOT dry_run ORDER BY started_at DESC LIMIT 1",
            (source_id,),
        ).fetchone()
        return _run(row) if row else None

    def running_runs(self) -> list[dict[str, Any]]:
        return list(
            self.conn.execute(
                "SELECT id, pid, heartbeat_at FROM harvest_runs WHERE status = 'running'"
            )
        )

    def add_errors(self, run_id: str, errors: list[dict[str, Any]]) -> None:
        if not errors:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO harvest_record_errors (run_id, record, location, severity, "
                "property, message) VALUES (%s, %s, %s, %s, %s, %s)",
                [
                    (
                        run_id,
                        e.get("record"),
                        e.get("location"),
                        e.get("severity", "error"),
                        e.get("property"),
                        e["message"][:4000],
                    )
                    for e in errors
                ],
            )

    def list_errors(self, run_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT record, location, severity, property, message FROM harvest_record_errors "
            "WHERE run_id = %s ORDER BY id LIMIT %s",
            (run_id, limit),
        ).fetchall()
        return [dict(r) for r in rows]
