"""Study-level records: subjects, imaging studies and conditions of one dataset.

Writes are set-based (``COPY`` into temporary tables, then one ``INSERT … ON CONFLICT`` per
table), so a batch of thousands of records costs a handful of statements. A record whose source
hash has not changed is not written at all: a re-harvest of an unchanged source writes nothing.
Every subject whose documents change gets one outbox row, so the subjects index follows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from catalogue.model.records import ConditionRecord, StudyRecord, SubjectRecord
from catalogue.ontology import get_vocabulary
from catalogue.store.db import Connection

_TEMP_TABLES = """
CREATE TEMP TABLE IF NOT EXISTS _in_studies (
    subject_id bigint, study_key text, modalities text[], body_parts text[], manufacturer text,
    series_count integer, instance_count integer, study_month date, age_at_study smallint,
    content_hash text) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS _in_conditions (
    subject_id bigint, condition_key text, system text, code text, concept text,
    content_hash text) ON COMMIT DELETE ROWS;
"""


@dataclass
class WriteCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    changed_subjects: set[int] = field(default_factory=set)
    inserted_subjects: set[int] = field(default_factory=set)  # stamped by their INSERT

    def add(self, other: WriteCounts) -> None:
        self.created += other.created
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.deleted += other.deleted
        self.changed_subjects |= other.changed_subjects


@dataclass
class KnownHashes:
    """Source hashes of what the store holds for one source, to skip unchanged records before
    validating them."""

    subjects: dict[str, str | None] = field(default_factory=dict)
    studies: dict[str, str | None] = field(default_factory=dict)
    conditions: dict[str, str | None] = field(default_factory=dict)

    def by_kind(self) -> dict[str, dict[str, str | None]]:
        """``{"subject": …, "study": …, "condition": …}``."""
        return {"subject": self.subjects, "study": self.studies, "condition": self.conditions}


def merge_subjects(records: Iterable[SubjectRecord]) -> list[SubjectRecord]:
    """One record per subject key: demographics from the record that carries them, studies and
    conditions concatenated (a later record with the same study or condition key wins)."""
    merged: dict[str, SubjectRecord] = {}
    for record in records:
        found = merged.get(record.key)
        if found is None:
            merged[record.key] = SubjectRecord(
                record.key, record.sex, record.birth_year, record.content_hash,
                list(record.studies), list(record.conditions))
            continue
        if record.content_hash is not None:
            found.sex, found.birth_year = record.sex, record.birth_year
            found.content_hash = record.content_hash
        found.studies.extend(record.studies)
        found.conditions.extend(record.conditions)
    return list(merged.values())


class RecordRepository:
    """Records of one dataset, written by one harvest source."""

    def __init__(self, conn: Connection, dataset_id: str, source_id: str | None) -> None:
        self.conn = conn
        self.dataset_id = dataset_id
        self.source_id = source_id
        self._concepts: dict[tuple[str, str], str | None] = {}

    # -- reading ------------------------------------------------------------------------------
    def known_hashes(self) -> KnownHashes:
        known = KnownHashes()
        params = (self.dataset_id, self.source_id)
        scope = "s.dataset_id = %s AND s.source_id IS NOT DISTINCT FROM %s"
        for row in self.conn.execute(
                f"SELECT subject_key, content_hash FROM subjects s WHERE {scope}", params):
            known.subjects[row["subject_key"]] = row["content_hash"]
        for row in self.conn.execute(
                "SELECT st.study_key, st.content_hash FROM imaging_studies st "
                f"JOIN subjects s ON s.id = st.subject_id WHERE {scope}", params):
            known.studies[row["study_key"]] = row["content_hash"]
        for row in self.conn.execute(
                "SELECT DISTINCT c.condition_key, c.content_hash FROM conditions c "
                f"JOIN subjects s ON s.id = c.subject_id WHERE {scope}", params):
            known.conditions[row["condition_key"]] = row["content_hash"]
        return known

    # -- writing ------------------------------------------------------------------------------
    def _temp_tables(self) -> None:
        self.conn.execute(_TEMP_TABLES)

    def _concept(self, system: str, code: str) -> str | None:
        key = (system, code)
        if key not in self._concepts:
            concept = get_vocabulary("conditions").resolve(f"{system}:{code}")
            self._concepts[key] = concept.id if concept else None
        return self._concepts[key]

    def write(self, records: Iterable[SubjectRecord], check_moves: bool = True) -> WriteCounts:
        """Merge ``records`` into the store (in the caller's transaction). ``check_moves``
        False: the caller knows none of these studies is stored yet (no study can have moved
        to another subject), which saves a join per batch."""
        subjects = merge_subjects(records)
        counts = WriteCounts()
        if not subjects:
            return counts
        self._temp_tables()
        ids = self._write_subjects(subjects, counts)
        studies = [(ids[s.key], st) for s in subjects for st in s.studies]
        conditions = [(ids[s.key], c) for s in subjects for c in s.conditions]
        if studies:
            self._write_studies(studies, counts, check_moves)
        if conditions:
            self._write_conditions(conditions, counts)
        self.enqueue(counts.changed_subjects, stamped=counts.inserted_subjects)
        return counts

    def _write_subjects(self, subjects: list[SubjectRecord], counts: WriteCounts) -> dict[str, int]:
        keys = [s.key for s in subjects]
        changed = self.conn.execute(
            "INSERT INTO subjects (dataset_id, subject_key, sex, birth_year, content_hash, "
            "source_id) SELECT %s, k, s, b, h, %s FROM unnest(%s::text[], %s::text[], "
            "%s::smallint[], %s::text[]) AS t(k, s, b, h) "
            "ON CONFLICT (dataset_id, subject_key) DO UPDATE SET sex = EXCLUDED.sex, "
            "birth_year = EXCLUDED.birth_year, content_hash = EXCLUDED.content_hash, "
            "source_id = EXCLUDED.source_id, updated_at = now() "
            "WHERE EXCLUDED.content_hash IS NOT NULL "
            "AND subjects.content_hash IS DISTINCT FROM EXCLUDED.content_hash "
            "RETURNING id, subject_key, content_hash, (xmax = 0) AS inserted",
            (self.dataset_id, self.source_id, keys, [s.sex for s in subjects],
             [s.birth_year for s in subjects], [s.content_hash for s in subjects]),
        ).fetchall()
        with_demographics = sum(1 for s in subjects if s.content_hash is not None)
        for row in changed:
            counts.changed_subjects.add(row["id"])
            if row["inserted"]:
                counts.inserted_subjects.add(row["id"])
            if row["content_hash"] is None:
                continue  # created by reference only; its demographics come later
            if row["inserted"]:
                counts.created += 1
            else:
                counts.updated += 1
            with_demographics -= 1
        counts.unchanged += max(with_demographics, 0)
        return {row["subject_key"]: row["id"] for row in self.conn.execute(
            "SELECT id, subject_key FROM subjects WHERE dataset_id = %s "
            "AND subject_key = ANY(%s)", (self.dataset_id, keys))}

    def _write_studies(self, studies: list[tuple[int, StudyRecord]], counts: WriteCounts,
                       check_moves: bool = True) -> None:
        latest = {st.key: (subject_id, st) for subject_id, st in studies}
        with self.conn.cursor() as cur, cur.copy(
            "COPY _in_studies FROM STDIN"
        ) as copy:
            copy.set_types(["int8", "text", "text[]", "text[]", "text", "int4", "int4", "date",
                            "int2", "text"])
            for subject_id, st in latest.values():
                copy.write_row((subject_id, st.key, st.modalities, st.body_parts, st.manufacturer,
                                st.series_count, st.instance_count, st.study_month,
                                st.age_at_study, st.content_hash))
        # a study that moved to another subject leaves its old one
        moved = [] if not check_moves else self.conn.execute(
            "DELETE FROM imaging_studies st USING _in_studies i, subjects s "
            "WHERE st.study_key = i.study_key AND st.subject_id <> i.subject_id "
            "AND s.id = st.subject_id AND s.dataset_id = %s RETURNING st.subject_id",
            (self.dataset_id,),
        ).fetchall()
        counts.changed_subjects.update(r["subject_id"] for r in moved)
        changed = self.conn.execute(
            "INSERT INTO imaging_studies (subject_id, study_key, modalities, body_parts, "
            "manufacturer, series_count, instance_count, study_month, age_at_study, "
            "content_hash) SELECT * FROM _in_studies "
            "ON CONFLICT (subject_id, study_key) DO UPDATE SET "
            "modalities = EXCLUDED.modalities, body_parts = EXCLUDED.body_parts, "
            "manufacturer = EXCLUDED.manufacturer, series_count = EXCLUDED.series_count, "
            "instance_count = EXCLUDED.instance_count, study_month = EXCLUDED.study_month, "
            "age_at_study = EXCLUDED.age_at_study, content_hash = EXCLUDED.content_hash, "
            "updated_at = now() "
            "WHERE imaging_studies.content_hash IS DISTINCT FROM EXCLUDED.content_hash "
            "OR EXCLUDED.content_hash IS NULL "
            "RETURNING subject_id, (xmax = 0) AS inserted",
        ).fetchall()
        inserted = sum(1 for r in changed if r["inserted"])
        counts.created += inserted
        counts.updated += len(changed) - inserted
        counts.unchanged += len(latest) - len(changed)
        counts.changed_subjects.update(r["subject_id"] for r in changed)

    def _write_conditions(self, conditions: list[tuple[int, ConditionRecord]],
                          counts: WriteCounts) -> None:
        latest = {c.key: (subject_id, c) for subject_id, c in conditions}
        with self.conn.cursor() as cur, cur.copy(
            "COPY _in_conditions FROM STDIN"
        ) as copy:
            copy.set_types(["int8", "text", "text", "text", "text", "text"])
            for subject_id, c in latest.values():
                for system, code in dict.fromkeys(c.codes):
                    copy.write_row((subject_id, c.key, system, code, self._concept(system, code),
                                    c.content_hash))
        replaced = self.conn.execute(
            "DELETE FROM conditions c USING _in_conditions i, subjects s "
            "WHERE c.condition_key = i.condition_key AND s.id = c.subject_id "
            "AND s.dataset_id = %s AND (c.subject_id <> i.subject_id "
            "OR c.content_hash IS DISTINCT FROM i.content_hash OR i.content_hash IS NULL) "
            "RETURNING c.subject_id, c.condition_key",
            (self.dataset_id,),
        ).fetchall()
        counts.changed_subjects.update(r["subject_id"] for r in replaced)
        inserted = self.conn.execute(
            "INSERT INTO conditions (subject_id, condition_key, system, code, concept, "
            "content_hash) SELECT i.* FROM _in_conditions i WHERE NOT EXISTS ("
            "SELECT 1 FROM conditions c WHERE c.subject_id = i.subject_id "
            "AND c.condition_key = i.condition_key) "
            "ON CONFLICT DO NOTHING RETURNING subject_id, condition_key",
        ).fetchall()
        counts.changed_subjects.update(r["subject_id"] for r in inserted)
        new_keys = {r["condition_key"] for r in inserted}
        replaced_keys = {r["condition_key"] for r in replaced}
        counts.updated += len(new_keys & replaced_keys)
        counts.created += len(new_keys - replaced_keys)
        # a record without codes writes no row; it is neither created nor changed
        counts.unchanged += len(latest) - len(new_keys)

    def enqueue(self, subject_ids: Iterable[int], stamped: Iterable[int] = ()) -> None:
        """Queue changed subjects for re-indexing and stamp them (an index rebuild catches up
        on ``updated_at``); ``stamped`` ones (just inserted) already carry this transaction's
        time."""
        ids = sorted({str(i) for i in subject_ids})
        unstamped = sorted(set(ids) - {str(i) for i in stamped})
        if unstamped:
            self.conn.execute("UPDATE subjects SET updated_at = now() WHERE id = ANY(%s::bigint[])",
                              (unstamped,))
        if ids:
            self.conn.execute(
                "INSERT INTO outbox (entity, entity_id) SELECT 'subject', unnest(%s::text[])",
                (ids,),
            )

    # -- deletions ----------------------------------------------------------------------------
    def delete_unseen(self, subjects: set[str], studies: set[str],
                      conditions: set[str]) -> WriteCounts:
        """After a complete run: remove this source's records the run did not see (deleted at
        the source). Subjects left without studies and conditions go too."""
        counts = WriteCounts()
        self.conn.execute("CREATE TEMP TABLE _seen_keys (kind char(1), key text) ON COMMIT DROP")
        with self.conn.cursor() as cur, cur.copy("COPY _seen_keys FROM STDIN") as copy:
            for kind, keys in (("p", subjects), ("s", studies), ("c", conditions)):
                for key in keys:
                    copy.write_row((kind, key))
        self.conn.execute("CREATE INDEX ON _seen_keys (kind, key)")
        self.conn.execute("ANALYZE _seen_keys")
        scope = "s.dataset_id = %s AND s.source_id IS NOT DISTINCT FROM %s"
        params = (self.dataset_id, self.source_id)
        gone_conditions = self.conn.execute(
            "DELETE FROM conditions c USING subjects s WHERE s.id = c.subject_id AND "
            f"{scope} AND NOT EXISTS (SELECT 1 FROM _seen_keys k WHERE k.kind = 'c' "
            "AND k.key = c.condition_key) RETURNING c.subject_id, c.condition_key", params,
        ).fetchall()
        gone_studies = self.conn.execute(
            "DELETE FROM imaging_studies st USING subjects s WHERE s.id = st.subject_id AND "
            f"{scope} AND NOT EXISTS (SELECT 1 FROM _seen_keys k WHERE k.kind = 's' "
            "AND k.key = st.study_key) RETURNING st.subject_id", params,
        ).fetchall()
        gone_subjects = self.conn.execute(
            f"DELETE FROM subjects s WHERE {scope} AND (NOT EXISTS (SELECT 1 FROM _seen_keys k "
            "WHERE k.kind = 'p' AND k.key = s.subject_key) OR (NOT EXISTS (SELECT 1 FROM "
            "imaging_studies st WHERE st.subject_id = s.id) AND NOT EXISTS (SELECT 1 FROM "
            "conditions c WHERE c.subject_id = s.id))) RETURNING s.id", params,
        ).fetchall()
        counts.deleted = (len({r["condition_key"] for r in gone_conditions}) + len(gone_studies)
                          + len(gone_subjects))
        touched = {r["subject_id"] for r in gone_conditions} | {
            r["subject_id"] for r in gone_studies} | {r["id"] for r in gone_subjects}
        counts.changed_subjects = touched
        self.enqueue(touched)
        return counts


def aggregate_counts(conn: Connection, dataset_id: str, age_step: int = 5) -> dict[str, Any]:
    """Exact per-dataset counts from the records (never exposed as such: see
    :func:`catalogue.privacy.aggregates.protect`)."""
    one = conn.execute(
        "SELECT (SELECT count(*) FROM subjects WHERE dataset_id = %(d)s) AS subjects, "
        "(SELECT count(*) FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id "
        "WHERE s.dataset_id = %(d)s) AS studies", {"d": dataset_id},
    ).fetchone()
    assert one is not None

    def grouped(select: str, source: str, group: str) -> dict[str, int]:
        sql = f"SELECT {select} {source} GROUP BY {group}"
        return {str(r["k"]): int(r["n"])
                for r in conn.execute(sql, {"d": dataset_id, "step": age_step})
                if r["k"] is not None}

    studies = ("FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id "
               "WHERE s.dataset_id = %(d)s")
    per_value = ("FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id "
                 "CROSS JOIN LATERAL unnest(st.{column}) AS v WHERE s.dataset_id = %(d)s")
    return {
        "subjects": int(one["subjects"]),
        "studies": int(one["studies"]),
        # subjects with at least one study of each kind
        "modalities": grouped("v AS k, count(DISTINCT s.id) AS n",
                              per_value.format(column="modalities"), "v"),
        "body_parts": grouped("v AS k, count(DISTINCT s.id) AS n",
                              per_value.format(column="body_parts"), "v"),
        "manufacturers": grouped("st.manufacturer AS k, count(DISTINCT s.id) AS n", studies,
                                 "st.manufacturer"),
        "sexes": grouped("sex AS k, count(*) AS n",
                         "FROM subjects WHERE dataset_id = %(d)s", "sex"),
        # subjects per age band of any of their studies; studies per year
        "age_bands": grouped("(st.age_at_study / %(step)s) * %(step)s AS k, "
                             "count(DISTINCT s.id) AS n", studies, "1"),
        "study_years": grouped("extract(year FROM st.study_month)::int AS k, count(*) AS n",
                               studies, "1"),
    }
