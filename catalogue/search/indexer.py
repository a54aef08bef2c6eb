"""The indexer: applies the PostgreSQL outbox to the search engine, and rebuilds indices.

Writes commit in PostgreSQL together with an outbox row. The indexer reads a batch of rows
(``FOR UPDATE SKIP LOCKED``, so several indexers never apply the same row), rebuilds each
document from PostgreSQL (never from the outbox row, so replays are idempotent), applies them in
one bulk request, and deletes the rows only after the engine accepted them. A crash or an engine
outage leaves the rows in place: nothing is lost, the next run resumes.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any, NamedTuple

from catalogue.errors import CatalogueError, SearchUnavailable, StoreUnavailable
from catalogue.model.dataset import Dataset
from catalogue.ontology import get_vocabulary, normalise
from catalogue.search.base import Action, Delete, SearchBackend, Upsert
from catalogue.search.mappings import load_definition
from catalogue.store.audit import outbox_lag
from catalogue.store.datasets import DatasetRepository
from catalogue.store.db import Database

log = logging.getLogger(__name__)


_VERSION = re.compile(r"-v(\d+)-\d{20}$")


def index_version(physical: str) -> int | None:
    """The definition version a physical index was built from (from its name)."""
    match = _VERSION.search(physical)
    return int(match.group(1)) if match else None


_HASH_BITS = 28


def _tie(doc_id: str) -> int:
    return int(hashlib.md5(doc_id.encode(), usedforsecurity=False).hexdigest()[:8], 16) \
        & ((1 << _HASH_BITS) - 1)


def _ranked(value: float | None, tie: int) -> int:
    rank = 0 if value is None else int(value) + 1
    return (rank << _HASH_BITS) | tie


def sort_key(value: float | None, doc_id: str) -> int:
    """A unique, sortable integer: ``value`` (missing sorts lowest), then a hash of the id, so
    that every engine orders ties the same way and ``search_after`` never skips or repeats."""
    return _ranked(value, _tie(doc_id))


def _epoch(value: datetime | date | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day, tzinfo=UTC)
    elif value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


#: distinct code lists whose expansion is kept: datasets and studies share a few hundred
_EXPANSIONS = 4096


@functools.lru_cache(maxsize=_EXPANSIONS)
def _expansion(vocabulary: str, values: tuple[str, ...]) -> _Expansion:
    """``values`` normalised to vocabulary ids (unknown codes kept as given); the same plus
    every ancestor (the ``*_path`` fields); the labels per language and the search terms of
    the concepts on that path. Vocabularies do not change while a process runs, and most
    documents repeat a code list seen before: one walk per distinct list."""
    ids, unknown = normalise(vocabulary, values)
    vocab = get_vocabulary(vocabulary)
    path = list(dict.fromkeys(m for cid in ids for m in (cid, *vocab.ancestors(cid))))
    labels: dict[str, list[str]] = {}
    terms: list[str] = []
    for member in path:
        concept = vocab.get(member)
        if concept is None:
            continue
        terms.extend(vocab.search_terms(member))
        for lang, label in concept.labels.items():
            labels.setdefault(lang.split("-")[0].lower(), []).append(label)
        for lang, alts in concept.alt_labels.items():
            labels.setdefault(lang.split("-")[0].lower(), []).extend(alts)
    return _Expansion(tuple(ids + unknown), tuple(path + unknown),
                      tuple((lang, tuple(found)) for lang, found in labels.items()),
                      tuple(terms))


class _Expansion(NamedTuple):
    coded: tuple[str, ...]
    path: tuple[str, ...]
    labels: tuple[tuple[str, tuple[str, ...]], ...]  # (language, labels) in first-seen order
    terms: tuple[str, ...]  # labels, alternative labels and codes of the concepts on the path


def _coded(vocabulary: str, values: list[str]) -> tuple[list[str], list[str]]:
    """``values`` normalised to vocabulary ids (unknown codes kept as given), and the same
    plus every ancestor (the ``*_path`` fields)."""
    found = _expansion(vocabulary, tuple(values))
    return list(found.coded), list(found.path)


@functools.cache
def _language_fields() -> dict[str, str]:
    return {tag: f.name for tag, f in load_definition("datasets").language_fields().items()}


def dataset_document(ds: Dataset) -> dict[str, Any]:
    """The datasets-index document for a dataset (all statuses; queries filter), with the
    values derived from its study-level records where it has them."""
    ds = ds.with_aggregates()
    assert ds.id is not None
    texts: dict[str, list[str]] = {}
    for values in (ds.title, ds.description):
        for lang, text in values.items():
            texts.setdefault((lang or "en").split("-")[0].lower(), []).append(text)
    # the labels of every concept and its ancestors go to the text fields, so that text
    # search finds a dataset by any of its concepts
    concept_text: list[str] = []
    expanded = [_expansion(vocabulary, tuple(values)) for vocabulary, values in
                (("conditions", ds.conditions), ("modalities", ds.modalities),
                 ("body_parts", ds.body_parts))]
    for found in expanded:
        concept_text.extend(found.terms)
        for lang, labels in found.labels:
            texts.setdefault(lang, []).extend(labels)
    conditions, modalities, body_parts = expanded
    modified = ds.modified or ds.updated_at
    tie = _tie(ds.id)
    document: dict[str, Any] = {
        "id": ds.id,
        "organisation_id": ds.organisation_id,
        "status": ds.status.value,
        "identifier": ds.identifier,
        "title": " \n".join(ds.title.values()),
        "description": " \n".join(ds.description.values()),
        "keywords_text": " \n".join(ds.keywords),
        "concept_text": " \n".join(dict.fromkeys(concept_text)),
        "keywords": ds.keywords,
        "themes": ds.themes,
        "health_categories": ds.health_categories,
        "conditions": list(conditions.coded),
        "conditions_path": list(conditions.path),
        "modalities": list(modalities.coded),
        "modalities_path": list(modalities.path),
        "body_parts": list(body_parts.coded),
        "body_parts_path": list(body_parts.path),
        "manufacturers": ds.manufacturers,
        "countries": ds.countries,
        "sexes": ds.sexes,
        "access_rights": ds.access_rights,
        "licence": ds.licence,
        "number_of_individuals": ds.number_of_individuals,
        "number_of_studies": ds.number_of_studies,
        "min_age": ds.min_age,
        "max_age": ds.max_age,
        "temporal_start": ds.temporal_start,
        "temporal_end": ds.temporal_end,
        "issued": ds.issued,
        "modified": modified,
        "modified_key": _ranked(_epoch(modified), tie),
        "individuals_key": _ranked(ds.number_of_individuals, tie),
        "studies_key": _ranked(ds.number_of_studies, tie),
    }
    language_fields = _language_fields()
    for lang, parts in texts.items():
        target = language_fields.get(lang)
        if target is not None:
            document[target] = " \n".join(dict.fromkeys(parts))
    return document


def subject_documents(conn: Any, subject_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Subjects-index documents for these subject ids (missing ids are absent): the subject,
    its dataset's provider and country, its diagnoses (normalised, with ancestors) and its
    imaging studies as nested items (age in the index's age bands, study year)."""
    if not subject_ids:
        return {}
    rows = conn.execute(
        "SELECT s.id, s.dataset_id, s.sex, s.birth_year, d.organisation_id, d.countries "
        "FROM subjects s JOIN datasets d ON d.id = s.dataset_id WHERE s.id = ANY(%s::bigint[])",
        ([int(i) for i in subject_ids if str(i).isdigit()],),
    ).fetchall()
    docs: dict[str, dict[str, Any]] = {}
    for r in rows:
        docs[str(r["id"])] = {
            "id": str(r["id"]), "dataset_id": str(r["dataset_id"]),
            "organisation_id": r["organisation_id"],
            "country": (r["countries"] or [None])[0], "sex": r["sex"],
            "birth_year": r["birth_year"], "studies": [], "conditions": [],
        }
    keys = [int(i) for i in docs]
    age_step = load_definition("subjects").fields["studies.age_band"].bin or 1
    codes: dict[str, list[str]] = {}
    for c in conn.execute(
        "SELECT subject_id, system, code, concept FROM conditions WHERE subject_id = ANY(%s)",
        (keys,),
    ):
        code = c["concept"] or f"{c['system']}:{c['code']}"
        codes.setdefault(str(c["subject_id"]), []).append(code)
    for study in conn.execute(
        "SELECT subject_id, modalities, body_parts, manufacturer, study_month, age_at_study "
        "FROM imaging_studies WHERE subject_id = ANY(%s) ORDER BY id", (keys,),
    ):
        modalities, modalities_path = _coded("modalities", study["modalities"])
        body_parts, body_parts_path = _coded("body_parts", study["body_parts"])
        age = study["age_at_study"]
        items = docs[str(study["subject_id"])]["studies"]
        items.append({
            "rank": len(items) + 1,  # study counts cap each subject's contribution by rank
            "modalities": modalities, "modalities_path": modalities_path,
            "body_parts": body_parts, "body_parts_path": body_parts_path,
            "manufacturer": study["manufacturer"],
            "age_band": None if age is None else int(age) // age_step * age_step,
            "year": study["study_month"].year if study["study_month"] else None,
        })
    for key, doc in docs.items():
        doc["conditions"], doc["conditions_path"] = _coded("conditions", codes.get(key, []))
        doc["study_count"] = len(doc["studies"])
    return docs


DATA_VERSION = "subjects_data_version"


def bump_data_version(conn: Any) -> None:
    """The study-level data the engine holds changed: cohort counts key their noise on this
    version, so a question asked again after a change gets fresh noise (and costs budget)."""
    conn.execute(
        "INSERT INTO indexer_state (name, value) VALUES (%s, '1'::jsonb) ON CONFLICT (name) DO "
        "UPDATE SET value = to_jsonb(indexer_state.value::text::bigint + 1), updated_at = now()",
        (DATA_VERSION,))


def data_version(conn: Any) -> int:
    row = conn.execute("SELECT value FROM indexer_state WHERE name = %s",
                       (DATA_VERSION,)).fetchone()
    return int(row["value"]) if row else 0


def outbox_state(db: Database) -> dict[str, Any]:
    """The outbox entries waiting for the indexer and the age of the oldest (``/readyz``)."""
    with db.transaction() as conn:
        pending, oldest = outbox_lag(conn)
    return {"pending": pending, "oldest_seconds": round(oldest, 3)}


class Indexer:
    """Drains the outbox into the search backend."""

    def __init__(self, db: Database, backend: SearchBackend, batch_size: int = 500) -> None:
        self.db = db
        self.backend = backend
        self.batch_size = batch_size
        self.datasets = load_definition("datasets")
        self.subjects = load_definition("subjects")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_success: datetime | None = None
        self.indices_ready = False  # set once ensure_indices() succeeded

    def ensure_indices(self) -> None:
        """Create missing indices; an index built from an older definition version is rebuilt
        (the old one keeps serving until the switch). The background loop retries this until
        it succeeds (an engine that was down at startup)."""
        for definition in (self.datasets, self.subjects):
            current = self.backend.ensure_index(definition)
            version = index_version(current)
            if version is not None and version < definition.version:
                log.warning("search index %s is version %d; rebuilding as version %d",
                            current, version, definition.version)
                self.rebuild(index=definition.name)
        self.indices_ready = True

    def _actions(self, conn: Any, ids: list[str], index: str = "datasets") -> list[Action]:
        """Upserts for the rows that exist, deletes for the others (idempotent)."""
        actions: list[Action] = []
        if index == "subjects":
            docs = subject_documents(conn, ids)
            return [Upsert(i, docs[i]) if i in docs else Delete(i) for i in ids]
        found = {d.id: d for d in DatasetRepository(conn).get_many_for_search(ids)}
        for ds_id in ids:
            ds = found.get(ds_id)
            actions.append(Upsert(ds_id, dataset_document(ds)) if ds else Delete(ds_id))
        return actions

    def run_once(self) -> int:
        """Apply one batch; return how many outbox rows were consumed."""
        alias = self.backend.logical_name(self.datasets.name)
        with self.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, entity, entity_id FROM outbox ORDER BY id LIMIT %s "
                "FOR UPDATE SKIP LOCKED",
                (self.batch_size,),
            ).fetchall()
            if not rows:
                conn.rollback()
                return 0
            for entity, definition in (("dataset", self.datasets),
                                       ("subject", self.subjects)):
                ids = sorted({r["entity_id"] for r in rows if r["entity"] == entity})
                if not ids:
                    continue
                target = alias if entity == "dataset" else self.backend.logical_name(
                    definition.name)
                result = self.backend.bulk(target, self._actions(conn, ids, definition.name))
                if result.errors:
                    log.error(
                        "search engine refused %d documents: %s",
                        len(result.errors),
                        "; ".join(result.errors[:5]),
                    )
                self.backend.refresh(target)
                if entity == "subject":
                    bump_data_version(conn)
            conn.execute("DELETE FROM outbox WHERE id = ANY(%s)", ([r["id"] for r in rows],))
        self.last_success = datetime.now(UTC)
        self.last_error = None
        return len(rows)

    def drain(self, max_seconds: float = 60.0) -> int:
        """Apply batches until the outbox is empty (or time runs out); return rows consumed."""
        total, deadline = 0, time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            done = self.run_once()
            total += done
            if done == 0:
                break
        return total

    def lag(self) -> dict[str, Any]:
        return {**outbox_state(self.db), "last_error": self.last_error}

    def rebuild(self, progress: Callable[[int, int], None] | None = None,
                index: str = "datasets") -> dict[str, Any]:
        """Build a new index (``datasets`` or ``subjects``) from PostgreSQL and switch the
        alias to it.

        Readers keep using the old index until the switch. Changes committed while the rebuild
        runs are caught up from PostgreSQL before and after the switch: rows whose
        ``updated_at`` is not older than the start of the oldest transaction still open when
        the rebuild began (a transaction stamps ``now()``, its *start*, so a clock reading
        would miss writes begun earlier and committed later), plus every pending outbox row
        (deletions included).
        """
        started = self._oldest_open_transaction()
        definition = self.subjects if index == "subjects" else self.datasets
        alias = self.backend.logical_name(definition.name)
        old = self.backend.current_index(alias)
        physical = self.backend.create_index(definition)
        with self.db.transaction() as conn:
            if index == "subjects":
                ids = [str(r["id"]) for r in conn.execute("SELECT id FROM subjects ORDER BY id")]
            else:
                ids = DatasetRepository(conn).all_ids()
        done = 0

        def batches() -> Iterator[list[Action]]:
            nonlocal done
            for start in range(0, len(ids), self.batch_size):
                chunk = ids[start : start + self.batch_size]
                with self.db.transaction() as conn:
                    actions = self._actions(conn, chunk, index)
                yield actions
                done += len(chunk)
                if progress:
                    progress(done, len(ids))

        self.backend.fill(physical, batches())
        self._catch_up(physical, started, index)
        self.backend.refresh(physical)
        self.backend.switch_alias(alias, physical)
        self._catch_up(physical, started, index)
        self.backend.refresh(physical)
        if index == "subjects":
            with self.db.transaction() as conn:
                bump_data_version(conn)
        if old and old != physical:
            self.backend.drop_index(old)
        return {"index": physical, "previous": old, "documents": done}

    def _oldest_open_transaction(self) -> datetime:
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT least(now(), min(xact_start)) AS t FROM pg_stat_activity "
                "WHERE datname = current_database() AND xact_start IS NOT NULL"
            ).fetchone()
        assert row is not None
        return row["t"]

    def _catch_up(self, physical: str, since: datetime, index: str = "datasets") -> None:
        table = "subjects" if index == "subjects" else "datasets"
        entity = "subject" if index == "subjects" else "dataset"
        with self.db.transaction() as conn:
            changed = [
                str(r["id"])
                for r in conn.execute(
                    f"SELECT id FROM {table} WHERE updated_at >= %s", (since,))
            ]
            changed += [str(r["entity_id"]) for r in conn.execute(
                "SELECT DISTINCT entity_id FROM outbox WHERE entity = %s", (entity,))]
            changed = list(dict.fromkeys(changed))
            if changed:
                self.backend.bulk(physical, self._actions(conn, changed, index))

    # -- background thread --------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self, interval: float = 1.0) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._loop, args=(interval,), daemon=True, name="catalogue-indexer"
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self, interval: float) -> None:
        backoff = interval
        while not self._stop.is_set():
            try:
                if not self.indices_ready:
                    self.ensure_indices()
                    log.info("search indices ready")
                while self.run_once() and not self._stop.is_set():
                    pass
                backoff = interval
            except (SearchUnavailable, StoreUnavailable) as exc:
                self.last_error = exc.code
                backoff = min(max(backoff * 2, interval), 30.0)
            except CatalogueError as exc:
                self.last_error = exc.code
                log.error("indexer error: %s", exc.message)
                backoff = min(max(backoff * 2, interval), 30.0)
            except Exception:
                self.last_error = "unexpected"
                log.exception("indexer failed unexpectedly")
                backoff = min(max(backoff * 2, interval), 30.0)
            self._wake.wait(backoff)
            self._wake.clear()
