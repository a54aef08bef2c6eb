"""OMOP ingest benchmark: ``rows`` generated ``image_occurrence`` rows (1–3 series per study,
about two on average, 10 per person, 2% with an ``image_feature``), in a CDM database created
on the catalogue's own PostgreSQL server (:func:`catalogue.testing.omop.generate_bulk`).

The source database is dropped at the end. Measured in one run, on the same rows:
- baseline: psycopg reading every ``image_occurrence`` row through a server-side cursor,
  doing nothing with them (the floor of any ingest that reads the table);
- the harvester reading, grouping and mapping them without writing (a dry run);
- the first ingest through the harvest service (read, group into studies, map concepts,
  pseudonymise, write, aggregates), in image_occurrence rows/s and studies/s;
- a re-ingest of the unchanged database (every study skipped by its keyed hash);
- baseline B, after the ingest: the store alone writing as many generated subjects and studies
  (same batch size, person order) into a scratch dataset (the floor of any ingest that writes
  through :class:`catalogue.store.records.RecordRepository`; nothing read or mapped).
Ratios: ingest rows/s over the scan's rows/s, and ingest studies/s over the store's studies/s.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import psycopg

from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.model.records import StudyRecord, SubjectRecord
from catalogue.runtime import Runtime
from catalogue.store.records import RecordRepository
from catalogue.testing.omop import create_database, drop_database, generate_bulk

SOURCE_DATABASE = "catalogue_bench_omop"
TARGET_ROWS_PER_S = 20_000


def _scan(url: str, fetch_size: int = 5000) -> tuple[int, float]:
    """Every image_occurrence row through a server-side cursor; (rows, seconds)."""
    started = time.perf_counter()
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor(name="bench_scan", binary=True) as cur:
        cur.itersize = fetch_size
        cur.execute("SELECT * FROM cdm.image_occurrence")
        while batch := cur.fetchmany(fetch_size):
            rows += len(batch)
    return rows, time.perf_counter() - started


def _store_floor(runtime: Runtime, subjects: int, studies: int, batch: int = 5000) -> float:
    """Seconds the store takes to write ``studies`` generated studies of ``subjects`` subjects
    into a scratch dataset (removed afterwards)."""
    dataset, _ = runtime.datasets.save(SYSTEM, Dataset(
        identifier="bench-omop-store", organisation_id="bench-org",
        title={"en": "OMOP benchmark: store alone"}))
    assert dataset.id is not None

    def key(*parts: object) -> str:
        return hashlib.sha256(repr(parts).encode()).hexdigest()[:40]

    per_subject = max(1, studies // max(subjects, 1))
    records: list[SubjectRecord] = []
    size, seconds = 0, 0.0
    for number in range(studies):
        if number % per_subject == 0 or not records:
            records.append(SubjectRecord(key("subject", number // per_subject), "female", 1960,
                                         key("demographics", number // per_subject)))
        records[-1].studies.append(StudyRecord(
            key("study", number), ["CT"], ["CHEST"], None, 2, None, date(2015, 6, 1), 55,
            key("content", number)))
        size += 1
        if size >= batch or number == studies - 1:
            started = time.perf_counter()
            with runtime.database.transaction() as conn:
                RecordRepository(conn, dataset.id, None).write(records)
            seconds += time.perf_counter() - started
            records, size = [], 0
    with runtime.database.transaction() as conn:
        conn.execute("DELETE FROM datasets WHERE id = %s", (dataset.id,))
    return seconds


def run(runtime: Runtime, rows: int = 1_000_000,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate ``rows`` image_occurrence rows, ingest them into ``runtime``'s store; return
    figures and ratios."""
    say = progress or (lambda _message: None)
    try:
        runtime.identities.create_organisation(SYSTEM, Organisation("bench-org", "Bench", "ES"))
    except Exception:  # noqa: S110 - already there from an earlier run
        pass
    dataset, _ = runtime.datasets.save(SYSTEM, Dataset(
        identifier="bench-omop", organisation_id="bench-org", title={"en": "OMOP benchmark"},
        status=DatasetStatus.PUBLISHED))
    with runtime.database.transaction() as conn:  # start from an empty dataset
        conn.execute("DELETE FROM subjects WHERE dataset_id = %s", (dataset.id,))
    url = create_database(runtime.database.url, SOURCE_DATABASE)
    try:
        generated = generate_bulk(url, "cdm", rows=rows, progress=say)

        say("baseline: server-side cursor scan")
        _scan(url)  # warm the cache: every measured pass reads a cached table
        scanned, scan_s = _scan(url)

        def ingest(dry_run: bool = False) -> tuple[Any, float]:
            started = time.perf_counter()
            report = runtime.harvest.run_url(
                SYSTEM, "omop", url, "bench-org", dataset="bench-omop", allow_private=True,
                dry_run=dry_run, config={"schema": "cdm"})
            return report, time.perf_counter() - started

        say("harvester, dry run (read, group, map)")
        dry, dry_s = ingest(dry_run=True)
        say("first ingest")
        first, ingest_s = ingest()
        say("re-ingest of the unchanged database")
        again, again_s = ingest()
    finally:
        drop_database(runtime.database.url, SOURCE_DATABASE)
    say("baseline B: the store writing as many studies alone")
    store_s = _store_floor(runtime, generated.persons, generated.studies)
    with runtime.database.transaction() as conn:
        stored = conn.execute(
            "SELECT count(*) AS studies, coalesce(sum(series_count), 0) AS series "
            "FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id "
            "WHERE s.dataset_id = %s", (dataset.id,)).fetchone()
    assert stored is not None
    scan_rate = scanned / scan_s
    ingest_rate = rows / ingest_s
    return {
        "image_occurrence_rows": rows,
        "studies": generated.studies,
        "persons": generated.persons,
        "image_feature_rows": generated.features,
        "generate_s": round(generated.seconds, 1),
        "baseline_scan_s": round(scan_s, 2),
        "baseline_scan_rows_per_s": round(scan_rate),
        "dry_run_s": round(dry_s, 2),
        "dry_run_rows_per_s": round(rows / dry_s),
        "ingest_status": first.status,
        "ingest_s": round(ingest_s, 2),
        "ingest_rows_per_s": round(ingest_rate),
        "ingest_studies_per_s": round(generated.studies / ingest_s),
        "target_rows_per_s": TARGET_ROWS_PER_S,
        "ratio_vs_baseline_scan": round(ingest_rate / scan_rate, 3),
        "store_write_only_s": round(store_s, 2),
        "store_write_only_studies_per_s": round(generated.studies / store_s),
        "ratio_vs_store_write_only": round(store_s / ingest_s, 2),
        "stored_studies": stored["studies"],
        "stored_series": stored["series"],
        "ingest_counts": first.counts,
        "dry_run_counts": dry.counts,
        "reingest_s": round(again_s, 2),
        "reingest_rows_per_s": round(rows / again_s),
        "reingest_counts": again.counts,
        "errors": len(first.errors),
    }
