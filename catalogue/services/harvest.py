"""Harvest sources and runs: register, run (now, one-shot, or when due), report.

A run is a row in ``harvest_runs`` (status running → completed | failed) with counts and
per-record errors. One run per source at a time (PostgreSQL advisory lock). A run whose process
died (``kill -9``) is marked failed by the next run or by ``run-due``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psutil

from catalogue.errors import CatalogueError, Conflict, Forbidden, NotFound, ValidationError
from catalogue.harvest.base import Harvester, RunContext, SourceUnreadable
from catalogue.model.identity import Identity
from catalogue.services.permissions import require_authenticated, require_organisation
from catalogue.store.audit import audit, enqueue
from catalogue.store.db import Database
from catalogue.store.harvest import HarvestRepository, HarvestRun, HarvestSource

log = logging.getLogger(__name__)

_SCHEDULE = re.compile(r"^every\s+(\d+)\s*([mhd])$")
_NAMED = {"@hourly": timedelta(hours=1), "@daily": timedelta(days=1), "@weekly": timedelta(weeks=1)}
STALE_AFTER = timedelta(minutes=10)


def schedule_interval(schedule: str | None) -> timedelta | None:
    """``@hourly``/``@daily``/``@weekly`` or ``every N m|h|d``; ``None`` for manual sources."""
    if not schedule:
        return None
    text = schedule.strip().lower()
    if text in _NAMED:
        return _NAMED[text]
    match = _SCHEDULE.match(text)
    if not match or int(match.group(1)) == 0:
        raise ValidationError(
            f"schedule {schedule!r} not understood; use @hourly, @daily, @weekly or "
            "'every N m|h|d' (e.g. 'every 6h')"
        )
    n, unit = int(match.group(1)), match.group(2)
    return {"m": timedelta(minutes=n), "h": timedelta(hours=n), "d": timedelta(days=n)}[unit]


@dataclass
class RunReport:
    run_id: str
    source_id: str | None
    status: str
    counts: dict[str, int]
    errors: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    complete: bool = True
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "source_id": self.source_id,
            "status": self.status,
            "complete": self.complete,
            "dry_run": self.dry_run,
            "counts": self.counts,
            "error": self.error,
            "errors": self.errors,
        }


#: study-level source kinds: their records belong to one dataset of the organisation
RECORD_KINDS = ("fhir", "omop", "dicomweb")


def _harvester(kind: str) -> Harvester:
    if kind == "dcat":
        from catalogue.harvest.dcat import DcatHarvester

        return DcatHarvester()
    if kind == "fhir":
        from catalogue.harvest.fhir import FhirHarvester

        return FhirHarvester()
    if kind == "omop":
        from catalogue.harvest.omop import OmopHarvester

        return OmopHarvester()
    if kind == "dicomweb":
        from catalogue.harvest.dicomweb import DicomwebHarvester

        return DicomwebHarvester()
    raise ValidationError(f"unknown source type {kind!r}")


def _dataset_id(conn: Any, organisation_id: str, dataset: str) -> str | None:
    """The id of the organisation's dataset whose id or identifier is ``dataset``."""
    row = conn.execute(
        "SELECT id FROM datasets WHERE organisation_id = %s AND "
        "(id::text = %s OR identifier = %s) ORDER BY (id::text = %s) DESC LIMIT 1",
        (organisation_id, dataset, dataset, dataset)).fetchone()
    return str(row["id"]) if row else None


def _check_omop_url(url: str) -> None:
    """An OMOP source is a postgresql:// URL without a password (or a service file or passfile
    that could supply one): credentials come from the environment."""
    from catalogue.harvest.omop import check_source_url

    try:
        check_source_url(url)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def _token(source: HarvestSource) -> str | None:
    """A source's credentials come from the environment variable its configuration names
    (``token_env``), never from the database."""
    name = source.config.get("token_env")
    if not name:
        return None
    token = os.environ.get(str(name))
    if not token:
        raise ValidationError(f"the source's token variable {name} is not set")
    return token


#: source settings that name an environment variable of this server holding credentials
_CREDENTIAL_SETTINGS = ("token_env", "password_env")
_CREDENTIALS_ADMIN_ONLY = (
    "only administrators may name the environment variable holding a source's credentials "
    "(token_env, password_env): it is read from this server's environment and sent to the "
    "source's address")


def _credential_settings(config: dict[str, Any]) -> dict[str, Any]:
    return {k: config[k] for k in _CREDENTIAL_SETTINGS if config.get(k)}


class HarvestService:
    def __init__(self, db: Database, on_change: Callable[[], None] | None = None,
                 secret: str = "", aggregate_floor: int = 10) -> None:
        self.db = db
        self.on_change = on_change or (lambda: None)
        self.secret = secret
        self.aggregate_floor = aggregate_floor

    # -- sources ------------------------------------------------------------------------------
    def register(self, identity: Identity, source: HarvestSource) -> HarvestSource:
        require_organisation(identity, source.organisation_id)
        if source.allow_private and not identity.is_admin:
            raise Forbidden("only administrators may allow a source on a private network")
        if _credential_settings(source.config) and not identity.is_admin:
            raise Forbidden(_CREDENTIALS_ADMIN_ONLY)
        if source.kind not in ("dcat", "fhir", "omop", "dicomweb"):
            raise ValidationError(f"unknown source type {source.kind!r}")
        self._check_settings(source)
        interval = schedule_interval(source.schedule)
        source.next_run_at = datetime.now(UTC) if interval else None
        with self.db.transaction() as conn:
            source.dataset_id = self._check_target(conn, source.kind, source.organisation_id,
                                                   source.dataset_id)
            created = HarvestRepository(conn).create_source(source)
            audit(
                conn,
                identity,
                "harvest_source.create",
                "harvest_source",
                created.id,
                {"organisation": created.organisation_id, "kind": created.kind},
            )
        return created

    @staticmethod
    def _check_settings(source: HarvestSource) -> None:
        """What a source's URL and validation mode must be, when registered or changed."""
        parts = urlsplit(source.url)
        if source.kind != "omop" and parts.scheme not in ("http", "https"):
            raise ValidationError("a registered source URL must be http:// or https://")
        if source.kind == "omop":
            _check_omop_url(source.url)
        if parts.password:
            raise ValidationError(
                "a registered source URL must not carry a password: name an environment "
                "variable holding it in the source configuration (password_env or token_env)")
        if source.validation_mode not in ("strict", "lenient"):
            raise ValidationError("validation must be 'strict' or 'lenient'")
        schedule_interval(source.schedule)

    def update_source(self, identity: Identity, source_id: str,
                      changes: dict[str, Any]) -> HarvestSource:
        """Change a source's name, URL, schedule, validation mode, configuration or
        ``enabled`` (``False`` pauses its schedule; it can still be run by hand).

        Only administrators change the private-network allowance and the credential variables
        (``token_env``, ``password_env``), and the URL of a source that has either.

        Another URL forgets the page validators and cursors of the old one. A new schedule,
        or a paused source enabled again, is due at once. Refused (409) while it runs.
        """
        require_organisation(identity, self.get_source(identity, source_id).organisation_id)
        changes = dict(changes)
        if "schedule" in changes and not (changes["schedule"] or "").strip():
            changes["schedule"] = None  # on demand
        fixed = sorted(set(changes) - set(HarvestRepository.UPDATABLE))
        if fixed:
            raise ValidationError(
                f"{', '.join(fixed)} of a source cannot change: register another source")
        with self.db.transaction() as conn:
            self._lock_idle(conn, source_id)
            repo = HarvestRepository(conn)
            source = repo.get_source(source_id, for_update=True)  # as the last run left it
            updated = replace(source, **changes)
            if not identity.is_admin:
                self._check_provider_change(source, updated)
            self._check_settings(updated)
            interval = schedule_interval(updated.schedule)
            if updated.schedule != source.schedule or (updated.enabled and not source.enabled):
                updated.next_run_at = datetime.now(UTC) if interval else None
            saved = repo.update_source(updated, reset_state=updated.url != source.url)
            audit(conn, identity, "harvest_source.update", "harvest_source", source.id,
                  {"changed": sorted(k for k in changes
                                     if getattr(source, k) != getattr(updated, k))})
        return saved

    def delete_source(self, identity: Identity, source_id: str,
                      withdraw_datasets: bool = False) -> dict[str, Any]:
        """Delete a source; refused (409) while it runs. Its run history is kept.

        Its datasets stay published with no source (another source or a provider may then
        take them over), unless ``withdraw_datasets``: then they are withdrawn (kept for audit,
        announced to harvesters of this catalogue). Study-level records stay with their
        dataset.
        """
        source = self.get_source(identity, source_id)
        require_organisation(identity, source.organisation_id)
        with self.db.transaction() as conn:
            self._lock_idle(conn, source.id)
            withdrawn: list[str] = []
            if withdraw_datasets:
                rows = conn.execute(
                    "UPDATE datasets SET status = 'withdrawn', withdrawn_at = now(), "
                    "updated_at = now(), version = version + 1 WHERE source_id = %s "
                    "AND status <> 'withdrawn' RETURNING id", (source.id,)).fetchall()
                withdrawn = [str(r["id"]) for r in rows]
                enqueue(conn, "dataset", withdrawn)
            row = conn.execute(
                "SELECT count(*) AS n FROM datasets WHERE source_id = %s AND "
                "status <> 'withdrawn'", (source.id,)).fetchone()
            released = int(row["n"]) if row else 0
            HarvestRepository(conn).delete_source(source.id)
            audit(conn, identity, "harvest_source.delete", "harvest_source", source.id,
                  {"organisation": source.organisation_id, "kind": source.kind,
                   "datasets_withdrawn": len(withdrawn), "datasets_released": released})
        if withdrawn:
            self.on_change()
        return {"id": source.id, "datasets_withdrawn": len(withdrawn),
                "datasets_released": released}

    @staticmethod
    def _check_provider_change(source: HarvestSource, updated: HarvestSource) -> None:
        """What only administrators may change: the private-network allowance and the
        credential variables, and the address of a source that has either (they were given
        for that address: another one would receive the access or the credentials)."""
        if updated.allow_private and not source.allow_private:
            raise Forbidden("only administrators may allow a source on a private network")
        if _credential_settings(updated.config) != _credential_settings(source.config):
            raise Forbidden(_CREDENTIALS_ADMIN_ONLY)
        if updated.url != source.url and (source.allow_private
                                          or _credential_settings(source.config)):
            raise Forbidden("only administrators may change the URL of a source allowed on a "
                            "private network or holding credentials")

    @staticmethod
    def _lock_idle(conn: Any, source_id: str) -> None:
        """Hold the source's run lock until the transaction ends: no run starts meanwhile,
        and a source that is running is refused."""
        row = conn.execute("SELECT pg_try_advisory_xact_lock(hashtext(%s)) AS ok",
                           (f"harvest:{source_id}",)).fetchone()
        if not row or not row["ok"]:
            raise Conflict("a run of this source is in progress: try again when it has ended")

    @staticmethod
    def _check_target(conn: Any, kind: str, organisation_id: str,
                      dataset_id: str | None) -> str | None:
        """The id of a study-level source's target dataset (given by id or identifier), which
        must belong to the source's organisation."""
        if kind not in RECORD_KINDS:
            if dataset_id:
                raise ValidationError("only study-level sources (fhir, omop, dicomweb) have a "
                                      "target dataset")
            return None
        if not dataset_id:
            raise ValidationError(f"a {kind} source needs the dataset its records belong to")
        found = _dataset_id(conn, organisation_id, dataset_id)
        if found is None:
            raise ValidationError(
                f"dataset {dataset_id!r} not found in organisation {organisation_id!r}")
        return found

    def resolve_dataset(self, organisation_id: str, dataset: str) -> str:
        """A dataset's id from its id or its identifier within the organisation."""
        with self.db.transaction() as conn:
            found = _dataset_id(conn, organisation_id, dataset)
        if found is None:
            raise NotFound(f"dataset {dataset!r} not found in organisation {organisation_id!r}")
        return found

    def list_sources(
        self, identity: Identity, organisation_id: str | None = None
    ) -> list[HarvestSource]:
        require_authenticated(identity)
        if not identity.is_admin:
            organisation_id = identity.organisation_id
            if not organisation_id:
                raise Forbidden("only providers and administrators see harvest sources")
        with self.db.transaction() as conn:
            return HarvestRepository(conn).list_sources(organisation_id)

    def get_source(self, identity: Identity, source_id: str) -> HarvestSource:
        require_authenticated(identity)
        with self.db.transaction() as conn:
            source = HarvestRepository(conn).get_source(source_id)
        if not (identity.is_admin or identity.member_of(source.organisation_id)):
            raise NotFound(f"harvest source {source_id!r} not found")
        return source

    # -- runs ---------------------------------------------------------------------------------
    def run_source(
        self,
        identity: Identity,
        source_id: str,
        *,
        dry_run: bool = False,
        progress: Callable[[dict[str, int]], None] | None = None,
        allowed_origins: frozenset[str] = frozenset(),
    ) -> RunReport:
        source = self.get_source(identity, source_id)
        require_organisation(identity, source.organisation_id)
        return self._run(
            identity, source, dry_run=dry_run, progress=progress, allowed_origins=allowed_origins
        )

    def start_source(self, identity: Identity, source_id: str, *,
                     dry_run: bool = False) -> str:
        """Start a run in the background; return its id as soon as it is recorded."""
        import threading

        source = self.get_source(identity, source_id)
        require_organisation(identity, source.organisation_id)
        started = threading.Event()
        result: dict[str, Any] = {}

        def record(run_id: str) -> None:
            result["run_id"] = run_id
            started.set()

        def work() -> None:
            try:
                self._run(identity, source, dry_run=dry_run, progress=None,
                          allowed_origins=frozenset(), on_started=record)
            except CatalogueError as exc:
                result["error"] = exc
            except Exception:
                log.exception("background harvest of source %s failed", source.id)
            finally:
                started.set()

        threading.Thread(target=work, name=f"harvest-{source.id}", daemon=True).start()
        started.wait(60)
        if "error" in result and "run_id" not in result:
            raise result["error"]
        if "run_id" not in result:
            raise Conflict("the run could not be started")
        return str(result["run_id"])

    def run_url(
        self,
        identity: Identity,
        kind: str,
        url: str,
        organisation_id: str,
        *,
        validation_mode: str = "lenient",
        dry_run: bool = False,
        allow_private: bool = False,
        allowed_origins: frozenset[str] = frozenset(),
        progress: Callable[[dict[str, int]], None] | None = None,
        dataset: str | None = None,
        config: dict[str, Any] | None = None,
        bearer_token: str | None = None,
    ) -> RunReport:
        """One-shot harvest of a URL or file, through an (implicit) source record so that
        re-runs de-duplicate and propagate deletions. Study-level kinds need ``dataset`` (its
        id or identifier)."""
        require_organisation(identity, organisation_id)
        if allow_private and not identity.is_admin:
            raise Forbidden("only administrators may harvest from a private network")
        if kind == "omop":
            _check_omop_url(url)  # before the URL is stored as a source
        dataset_id = None
        if kind in RECORD_KINDS:
            if not dataset:
                raise ValidationError(f"a {kind} harvest needs the dataset its records belong to")
            dataset_id = self.resolve_dataset(organisation_id, dataset)
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT id FROM harvest_sources WHERE organisation_id = %s AND kind = %s "
                "AND url = %s AND dataset_id IS NOT DISTINCT FROM %s::uuid "
                "ORDER BY created_at LIMIT 1",
                (organisation_id, kind, url, dataset_id),
            ).fetchone()
            repo = HarvestRepository(conn)
            if row is None:
                source = repo.create_source(
                    HarvestSource(
                        id="",
                        organisation_id=organisation_id,
                        kind=kind,
                        url=url,
                        name="one-shot",
                        validation_mode=validation_mode,
                        allow_private=allow_private,
                        dataset_id=dataset_id,
                        config=dict(config or {}),
                    )
                )
            else:
                source = repo.get_source(str(row["id"]))
        overrides = {"validation_mode": validation_mode,
                     "allow_private": allow_private or source.allow_private,
                     "config": {**source.config, **(config or {})}}
        return self._run(
            identity, source, dry_run=dry_run, progress=progress, allowed_origins=allowed_origins,
            bearer_token=bearer_token, overrides=overrides,
        )

    def _run(
        self,
        identity: Identity,
        source: HarvestSource,
        *,
        dry_run: bool,
        progress: Callable[[dict[str, int]], None] | None,
        allowed_origins: frozenset[str],
        on_started: Callable[[str], None] | None = None,
        bearer_token: str | None = None,
        overrides: dict[str, Any] | None = None,
        scheduled: bool = False,
    ) -> RunReport:
        """Run ``source``: read again once its run lock is held (a change or deletion made
        since it was read is what runs, or refused), with ``overrides`` (a one-shot run's
        settings) applied. A ``scheduled`` run of a source paused or unscheduled meanwhile is
        refused (Conflict)."""
        self.mark_stale_runs()
        harvester = _harvester(source.kind)
        lock = self.db.pool.getconn()
        try:
            locked = lock.execute(
                "SELECT pg_try_advisory_lock(hashtext(%s)) AS ok", (f"harvest:{source.id}",)
            ).fetchone()
            lock.commit()
            if not locked or not locked["ok"]:
                raise Conflict("a run of this source is already in progress")
            with self.db.transaction() as conn:
                repo = HarvestRepository(conn)
                try:
                    source = replace(repo.get_source(source.id), **(overrides or {}))
                except NotFound:
                    raise Conflict("the source was deleted before its run started") from None
                if scheduled and not (source.enabled and source.schedule):
                    raise Conflict("the source was paused before its run started")
                if bearer_token is None:
                    bearer_token = _token(source)
                previous = repo.last_completed(source.id)
                run = repo.start_run(
                    source.id, source.organisation_id, source.kind, dry_run, os.getpid()
                )
                audit(
                    conn,
                    identity,
                    "harvest.run",
                    "harvest_source",
                    source.id,
                    {"run": run.id, "dry_run": dry_run},
                )
            if on_started is not None:
                on_started(run.id)
            incremental = bool(source.config.get("incremental")) and previous is not None
            ctx = RunContext(
                db=self.db,
                organisation_id=source.organisation_id,
                url=source.url,
                run_id=run.id,
                source_id=source.id,
                validation_mode=source.validation_mode,
                dry_run=dry_run,
                allow_private=source.allow_private,
                allowed_origins=allowed_origins,
                state=dict(source.state),
                modified_since=previous.started_at if incremental and previous else None,
                progress=progress,
                on_flush=self._flush,
                dataset_id=source.dataset_id,
                secret=self.secret,
                config=dict(source.config),
                bearer_token=bearer_token,
                aggregate_floor=self.aggregate_floor,
            )
            status, error = "completed", None
            try:
                harvester.run(ctx)
                sync = getattr(harvester, "sync_deletions", None)
                if sync is not None:
                    sync(ctx)
            except SourceUnreadable as exc:
                status, error = "failed", str(exc)
            except CatalogueError as exc:
                status, error = "failed", exc.message
            except Exception as exc:
                log.exception("harvest run %s failed", run.id)
                status, error = "failed", f"unexpected error: {type(exc).__name__}"
            self._flush(ctx)
            interval = schedule_interval(source.schedule)
            with self.db.transaction() as conn:
                repo = HarvestRepository(conn)
                repo.finish_run(run.id, status, ctx.counts, error,
                                complete=status == "completed" and ctx.complete)
                if not dry_run:
                    repo.save_state(
                        source.id,
                        ctx.state if status == "completed" else source.state,
                        datetime.now(UTC) + interval if interval else None,
                    )
                errors = repo.list_errors(run.id)
        finally:
            try:
                lock.execute("SELECT pg_advisory_unlock_all()")
                lock.commit()
            finally:
                self.db.pool.putconn(lock)
        self.on_change()
        return RunReport(
            run.id, source.id, status, ctx.counts, errors, error, ctx.complete, dry_run
        )

    def _flush(self, ctx: RunContext) -> None:
        if not ctx.run_id:
            return
        pending, ctx.errors = ctx.errors, []
        with self.db.transaction() as conn:
            repo = HarvestRepository(conn)
            repo.add_errors(ctx.run_id, pending)
            repo.heartbeat(ctx.run_id, ctx.counts)

    def mark_stale_runs(self) -> int:
        """Runs left 'running' by a dead process (same host) or silent for too long → failed."""
        with self.db.transaction() as conn:
            stale = []
            for row in HarvestRepository(conn).running_runs():
                dead = row["pid"] is not None and not psutil.pid_exists(row["pid"])
                silent = row["heartbeat_at"] < datetime.now(UTC) - STALE_AFTER
                if dead or silent:
                    stale.append(row["id"])
            for run_id in stale:
                conn.execute(
                    "UPDATE harvest_runs SET status = 'failed', finished_at = now(), "
                    "error = 'the harvesting process stopped before the run finished' "
                    "WHERE id = %s AND status = 'running'",
                    (run_id,),
                )
        return len(stale)

    def run_due(
        self, identity: Identity, progress: Callable[[dict[str, int]], None] | None = None
    ) -> list[RunReport]:
        with self.db.transaction() as conn:
            due = HarvestRepository(conn).due_sources()
        reports = []
        for source in due:
            try:
                reports.append(
                    self._run(
                        identity,
                        source,
                        dry_run=False,
                        progress=progress,
                        allowed_origins=frozenset(),
                        scheduled=True,
                    )
                )
            except Conflict:  # running, or paused or deleted since it was found due
                continue
        return reports

    def list_runs(self, identity: Identity, source_id: str) -> list[HarvestRun]:
        self.get_source(identity, source_id)
        with self.db.transaction() as conn:
            return HarvestRepository(conn).list_runs(source_id)

    def get_run(self, identity: Identity, run_id: str) -> tuple[HarvestRun, list[dict[str, Any]]]:
        require_authenticated(identity)
        with self.db.transaction() as conn:
            repo = HarvestRepository(conn)
            run = repo.get_run(run_id)
            if not (identity.is_admin or identity.member_of(run.organisation_id)):
                raise NotFound(f"harvest run {run_id!r} not found")
            return run, repo.list_errors(run_id)
