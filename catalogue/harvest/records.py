"""What the study-level harvesters (FHIR, OMOP, DICOMweb) share.

A subclass reads its source and yields batches of pseudonymised :class:`SubjectRecord` s; this
base class writes them (skipping records whose source hash is unchanged), remembers every key it
saw, and at the end of a complete, non-incremental run deletes what the source no longer has.
Then it recomputes the dataset's aggregates (privacy-protected) and queues the dataset for
re-indexing.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Iterator
from typing import Any

from psycopg.types.json import Jsonb

from catalogue.harvest.base import RECORD_COUNTERS, Harvester, RunContext, SourceUnreadable
from catalogue.model.records import SubjectRecord
from catalogue.privacy.aggregates import protect
from catalogue.privacy.pseudonymise import Pseudonymiser
from catalogue.store.db import is_uuid
from catalogue.store.records import KnownHashes, RecordRepository, WriteCounts, aggregate_counts

log = logging.getLogger(__name__)


class RecordHarvester(Harvester):
    """Base of the harvesters that write subjects, imaging studies and conditions."""

    batch_size = 2000

    def __init__(self) -> None:
        self.known = KnownHashes()
        self.seen_subjects: set[str] = set()
        self.seen_studies: set[str] = set()
        self.seen_conditions: set[str] = set()
        self.pseudonyms: Pseudonymiser | None = None
        self._known = self.known.by_kind()
        self._seen = {"subject": self.seen_subjects, "study": self.seen_studies,
                      "condition": self.seen_conditions}
        self._written: set[str] = set()  # study keys written in this run

    # -- for subclasses -----------------------------------------------------------------------
    @abc.abstractmethod
    def batches(self, ctx: RunContext) -> Iterator[list[SubjectRecord]]:
        """Read the source; yield pseudonymised records in batches. Report bad records with
        ``ctx.error`` and ``ctx.count("invalid")``; raise :class:`SourceUnreadable` only when
        nothing can be read."""

    @property
    def pseudonymiser(self) -> Pseudonymiser:
        assert self.pseudonyms is not None, "pseudonymiser used before run()"
        return self.pseudonyms

    def unchanged(self, kind: str, key: str, content_hash: str) -> bool:
        """True if the store already holds this record with this source hash: the caller skips
        validating and mapping it (and the record counts as seen and unchanged)."""
        return self._known[kind].get(key, "") == content_hash

    def mark_seen(self, kind: str, key: str) -> None:
        self._seen[kind].add(key)

    # -- the run ------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> None:
        if not ctx.dataset_id:
            raise SourceUnreadable(
                f"a {self.kind} source needs a target dataset (the dataset the records belong to)")
        if not ctx.secret:
            raise SourceUnreadable("study-level harvesting needs the server secret "
                                   "(CATALOGUE_SECRET_KEY) to derive pseudonyms")
        for name in RECORD_COUNTERS:
            ctx.counts.setdefault(name, 0)
        ctx.counts.pop("withdrawn", None)
        ctx.counts.pop("failed", None)
        self.pseudonyms = Pseudonymiser.for_provider(ctx.secret, ctx.organisation_id)
        self._check_dataset(ctx)
        if not ctx.dry_run:
            with ctx.db.transaction() as conn:
                self.known = RecordRepository(conn, ctx.dataset_id, ctx.source_id).known_hashes()
            self._known = self.known.by_kind()
        changed = False
        for batch in self.batches(ctx):
            self._note_seen(batch)
            if ctx.dry_run or not batch:
                ctx.tick()
                continue
            started = time.perf_counter()
            keys = [st.key for subject in batch for st in subject.studies]
            may_move = any(k in self.known.studies or k in self._written for k in keys)
            with ctx.db.transaction() as conn:
                counts = RecordRepository(conn, ctx.dataset_id, ctx.source_id).write(
                    batch, check_moves=may_move)
            self._written.update(keys)
            ctx.timed("write", time.perf_counter() - started)
            changed |= bool(counts.changed_subjects)
            self._count(ctx, counts)
            ctx.tick()
        if ctx.dry_run:
            return
        if ctx.complete and ctx.modified_since is None and self._something_unseen():
            with ctx.db.transaction() as conn:
                deleted = RecordRepository(conn, ctx.dataset_id, ctx.source_id).delete_unseen(
                    self.seen_subjects, self.seen_studies, self.seen_conditions)
            ctx.count("deleted", deleted.deleted)
            changed |= bool(deleted.changed_subjects)
        elif not ctx.complete:
            ctx.error("part of the source could not be read: records missing from this run "
                      "were kept (no deletions applied)", severity="warning")
        if changed or not self._has_aggregates(ctx):
            self.update_aggregates(ctx)
        ctx.tick(force=True)

    def _something_unseen(self) -> bool:
        """Whether the store holds a record of this source the run did not see (else the
        deletion pass has nothing to do)."""
        return not (self.known.subjects.keys() <= self.seen_subjects
                    and self.known.studies.keys() <= self.seen_studies
                    and self.known.conditions.keys() <= self.seen_conditions)

    def _note_seen(self, batch: list[SubjectRecord]) -> None:
        for subject in batch:
            self.seen_subjects.add(subject.key)
            self.seen_studies.update(s.key for s in subject.studies)
            self.seen_conditions.update(c.key for c in subject.conditions)

    @staticmethod
    def _count(ctx: RunContext, counts: WriteCounts) -> None:
        ctx.count("created", counts.created)
        ctx.count("updated", counts.updated)
        ctx.count("unchanged", counts.unchanged)

    @staticmethod
    def _check_dataset(ctx: RunContext) -> None:
        with ctx.db.transaction() as conn:
            row = conn.execute("SELECT organisation_id FROM datasets WHERE id = %s",
                               (ctx.dataset_id,)).fetchone() if is_uuid(ctx.dataset_id) else None
        if row is None or row["organisation_id"] != ctx.organisation_id:
            raise SourceUnreadable(
                f"dataset {ctx.dataset_id} does not exist in organisation {ctx.organisation_id}")

    @staticmethod
    def _has_aggregates(ctx: RunContext) -> bool:
        with ctx.db.transaction() as conn:
            row = conn.execute("SELECT aggregates ? 'records' AS ok FROM datasets WHERE id = %s",
                               (ctx.dataset_id,)).fetchone()
        return bool(row and row["ok"])

    def update_aggregates(self, ctx: RunContext) -> dict[str, Any]:
        """Recompute the dataset's record-derived aggregates and queue it for re-indexing."""
        return update_aggregates(ctx.db, str(ctx.dataset_id), ctx.aggregate_floor, self.kind)


def update_aggregates(db: Any, dataset_id: str, floor: int, source: str | None = None
                      ) -> dict[str, Any]:
    """Store the protected aggregates of one dataset (see :mod:`catalogue.privacy.aggregates`)
    on the dataset and queue it for re-indexing."""
    with db.transaction() as conn:
        protected = protect(aggregate_counts(conn, dataset_id), floor, source=source)
        conn.execute(
            # unchanged aggregates leave the dataset unchanged (its export and harvesters too)
            "UPDATE datasets SET aggregates = %s, updated_at = now(), version = version + 1 "
            "WHERE id = %s AND aggregates IS DISTINCT FROM %s",
            (Jsonb(protected), dataset_id, Jsonb(protected)))
        conn.execute("INSERT INTO outbox (entity, entity_id) VALUES ('dataset', %s)",
                     (dataset_id,))
    return protected
