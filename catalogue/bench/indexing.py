"""Indexing benchmark: the catalogue's index rebuild against the engine's bulk call alone.

Measured in one run, on the same documents, for both indices:
- ``datasets``: a realistic generated catalogue (:mod:`catalogue.testing.search_corpus`) loaded
  into PostgreSQL;
- ``subjects``: a synthetic population (:mod:`catalogue.bench.synthetic`: subjects with nested
  studies and diagnoses).

For each index:
- baseline: the documents, read and built beforehand (not timed), loaded into a fresh physical
  index in batches of the same size through ``SearchBackend.fill`` (the rebuild's own loading
  call), then refreshed: the engine alone;
- the catalogue: ``Indexer.rebuild`` (what ``catalogue index rebuild`` runs: read from
  PostgreSQL, build the documents, bulk calls, catch-up, refresh, alias switch).
- on tantivy, the writer's own ceiling: the same documents serialised to JSON beforehand and
  loaded with ``add_json``, committed once (no Python work per field or document).
The ratio is rebuild documents/s over the engine-alone documents/s (≤ 1: the share of the
engine's own rate the catalogue keeps). The issue's target (≥ 50,000 documents/s on tantivy,
≥ 5,000 on OpenSearch) is judged on the rebuild rate, the whole path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson

from catalogue.bench.search import _load
from catalogue.bench.synthetic import Spec, generate
from catalogue.errors import ValidationError
from catalogue.runtime import Runtime
from catalogue.search.backends.tantivy_backend import TantivyBackend
from catalogue.search.base import Action, Upsert
from catalogue.search.mappings import IndexDefinition
from catalogue.store.datasets import DatasetRepository

#: the issue's bulk indexing targets (documents/s), per engine family
TARGETS = {"tantivy": 50_000, "opensearch": 5_000}


def run(runtime: Runtime, datasets: int = 20_000, subjects: int = 100_000,
        studies: int | None = None, batch: int = 2_000, seed: int = 0,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load, then time both indices' rebuilds against the engine alone; return the figures."""
    say = progress or (lambda _message: None)
    backend, indexer = runtime.search, runtime.indexer
    if backend is None or indexer is None:
        raise RuntimeError("the indexing benchmark needs a search engine")
    if datasets < 1 or subjects < 1:
        raise ValidationError("the indexing benchmark needs datasets and subjects")
    with runtime.database.transaction() as conn:
        row = conn.execute("SELECT EXISTS (SELECT 1 FROM datasets) AS taken").fetchone()
    if row and row["taken"]:
        raise ValidationError("the indexing benchmark needs an empty catalogue")
    engine = backend.ping()
    family = "tantivy" if backend.name == "tantivy" else "opensearch"
    say(f"loading {datasets:,} datasets")
    _load(runtime, datasets, seed, batch)
    say(f"generating {subjects:,} subjects")
    spec = Spec(providers=5, countries=5, datasets=max(1, subjects // 1_000),
                subjects=subjects, studies=studies or subjects * 3, seed=seed + 7, prefix="idx")
    with runtime.database.transaction() as conn:
        generate(conn, spec)
    figures: dict[str, Any] = {"engine": engine.get("engine", backend.name),
                               "engine_version": engine.get("version"), "batch": batch}
    indexer.batch_size = batch
    for index in ("datasets", "subjects"):
        say(f"{index}: the engine alone, then the rebuild")
        definition = indexer.subjects if index == "subjects" else indexer.datasets
        with runtime.database.transaction() as conn:
            if index == "subjects":
                ids = [str(r["id"]) for r in conn.execute("SELECT id FROM subjects ORDER BY id")]
            else:
                ids = DatasetRepository(conn).all_ids()
        prepared: list[list[Action]] = []
        started = time.perf_counter()
        for start in range(0, len(ids), batch):
            with runtime.database.transaction() as conn:
                prepared.append(indexer._actions(conn, ids[start:start + batch], index))
        build_s = time.perf_counter() - started
        physical = backend.create_index(definition)
        started = time.perf_counter()
        errors = len(backend.fill(physical, prepared).errors)
        engine_s = time.perf_counter() - started
        backend.drop_index(physical)
        ceiling = (_tantivy_ceiling(backend, definition, prepared)
                   if isinstance(backend, TantivyBackend) else None)
        del prepared
        started = time.perf_counter()
        rebuilt = indexer.rebuild(index=index)
        rebuild_s = time.perf_counter() - started
        docs = len(ids)
        rate, alone = docs / rebuild_s, docs / engine_s
        figures[index] = {
            "documents": docs, "rebuilt_documents": rebuilt["documents"],
            "read_and_build_s": round(build_s, 2),
            "engine_alone_s": round(engine_s, 2), "engine_alone_docs_per_s": round(alone),
            "engine_alone_errors": errors,
            "rebuild_s": round(rebuild_s, 2), "rebuild_docs_per_s": round(rate),
            "ratio_rebuild_vs_engine_alone": round(rate / alone, 3),
            **({} if ceiling is None else {
                "engine_json_only_s": round(ceiling, 2),
                "engine_json_only_docs_per_s": round(docs / ceiling),
                "ratio_rebuild_vs_engine_json_only": round(rate / (docs / ceiling), 3)}),
            "target_docs_per_s": TARGETS[family],
            "meets_target": rate >= TARGETS[family],
        }
    return figures


def _tantivy_ceiling(backend: TantivyBackend, definition: IndexDefinition,
                     prepared: list[list[Action]]) -> float:
    """Seconds tantivy's writer alone takes for the same documents, already serialised to JSON
    (``add_json``: no Python value per field), committed once: what no Python pipeline on
    this machine can beat. A subject counts as one document, as above (its item documents
    included)."""
    texts = [orjson.dumps(doc).decode()  # dates as RFC 3339, as tantivy reads them
             for actions in prepared for action in actions if isinstance(action, Upsert)
             for doc in TantivyBackend._documents(definition, action.id, action.document)]
    physical = backend.create_index(definition)
    try:
        writer = backend._opened(physical).get_writer()
        started = time.perf_counter()
        for text in texts:
            writer.add_json(text)
        writer.commit()
        return time.perf_counter() - started
    finally:
        backend.drop_index(physical)

