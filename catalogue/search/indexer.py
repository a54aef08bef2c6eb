"""The indexer: applies the PostgreSQL outbox to the search engine, and rebuilds indices.

Writes commit in PostgreSQL together with an outbox row. The indexer reads a batch of rows
(``FOR UPDATE SKIP LOCKED``, so several indexers never apply the same row), rebuilds each
document from PostgreSQL (never from the outbox row, so replays are idempotent), applies them in
one bulk request, and deletes the rows only after the engine accepted them. A crash or an engine
outage leaves the rows in place: nothing is lost, the next run resumes.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from catalogue.errors import CatalogueError, SearchUnavailable, StoreUnavailable
from catalogue.model.dataset import Dataset
from catalogue.search.base import Action, Delete, SearchBackend, Upsert
from catalogue.search.mappings import load_definition
from catalogue.store.datasets import DatasetRepository
from catalogue.store.db import Database

log = logging.getLogger(__name__)


def dataset_document(ds: Dataset) -> dict[str, Any]:
    """The datasets-index document for a dataset (all statuses; queries filter)."""
    assert ds.id is not None
    titles = list(ds.title.values())
    return {
        "id": ds.id,
        "organisation_id": ds.organisation_id,
        "status": ds.status.value,
        "identifier": ds.identifier,
        "title": " \n".join(titles),
        "description": " \n".join(ds.description.values()),
        "keywords_text": " \n".join(ds.keywords),
        "title_sort": ds.label().lower()[:200],
        "keywords": ds.keywords,
        "themes": ds.themes,
        "health_categories": ds.health_categories,
        "conditions": ds.conditions,
        "modalities": ds.modalities,
        "body_parts": ds.body_parts,
        "manufacturers": ds.manufacturers,
        "countries": ds.countries,
        "sexes": ds.sexes,
        "access_rights": ds.access_rights,
        "licence": ds.licence,
        "number_of_individuals": ds.number_of_individuals,
        "number_of_studies": ds.number_of_studies,
        "min_age": ds.min_age,
        "max_age": ds.max_age,
        "modified": ds.modified or ds.updated_at,
    }


class Indexer:
    """Drains the outbox into the search backend."""

    def __init__(self, db: Database, backend: SearchBackend, batch_size: int = 500) -> None:
        self.db = db
        self.backend = backend
        self.batch_size = batch_size
        self.datasets = load_definition("datasets")
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self.last_success: datetime | None = None

    def ensure_indices(self) -> None:
        self.backend.ensure_index(self.datasets)

    def _actions(self, conn: Any, dataset_ids: list[str]) -> list[Action]:
        found = {d.id: d for d in DatasetRepository(conn).get_many(dataset_ids)}
        actions: list[Action] = []
        for ds_id in dataset_ids:
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
            dataset_ids = sorted({r["entity_id"] for r in rows if r["entity"] == "dataset"})
            actions = self._actions(conn, dataset_ids)
            result = self.backend.bulk(alias, actions)
            if result.errors:
                log.error(
                    "search engine refused %d documents: %s",
                    len(result.errors),
                    "; ".join(result.errors[:5]),
                )
            self.backend.refresh(alias)
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
        with self.db.transaction() as conn:
            row = conn.execute(
                "SELECT count(*) AS pending, "
                "extract(epoch FROM now() - min(created_at)) AS oldest_seconds FROM outbox"
            ).fetchone()
        assert row is not None
        return {
            "pending": int(row["pending"]),
            "oldest_seconds": round(float(row["oldest_seconds"] or 0.0), 3),
            "last_error": self.last_error,
        }

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
        """Build a new datasets index from PostgreSQL and switch the alias to it.

        Readers keep using the old index until the switch. Changes committed while the rebuild
        runs are caught up from PostgreSQL (by ``updated_at``) before and after the switch.
        """
        started = datetime.now(UTC)
        alias = self.backend.logical_name(self.datasets.name)
        old = self.backend.current_index(alias)
        physical = self.backend.create_index(self.datasets)
        with self.db.transaction() as conn:
            ids = DatasetRepository(conn).all_ids()
        done = 0
        for start in range(0, len(ids), self.batch_size):
            chunk = ids[start : start + self.batch_size]
            with self.db.transaction() as conn:
                self.backend.bulk(physical, self._actions(conn, chunk))
            done += len(chunk)
            if progress:
                progress(done, len(ids))
        self._catch_up(physical, started)
        self.backend.refresh(physical)
        self.backend.switch_alias(alias, physical)
        self._catch_up(physical, started)
        self.backend.refresh(physical)
        if old and old != physical:
            self.backend.drop_index(old)
        return {"index": physical, "previous": old, "documents": done}

    def _catch_up(self, physical: str, since: datetime) -> None:
        with self.db.transaction() as conn:
            changed = [
                str(r["id"])
                for r in conn.execute("SELECT id FROM datasets WHERE updated_at >= %s", (since,))
            ]
            if changed:
                self.backend.bulk(physical, self._actions(conn, changed))

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
