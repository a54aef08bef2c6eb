"""What the indexer reads for a search document: the lean read an index rebuild uses makes the
very documents the full read makes, aggregates from study-level records included."""

from __future__ import annotations

from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.search.base import Delete, Upsert
from catalogue.search.indexer import dataset_document
from catalogue.services.codes import unknown_code_warnings
from catalogue.store.datasets import DatasetRepository, content_hash
from catalogue.testing.search_corpus import generate_datasets, providers


def test_the_lean_read_makes_the_same_documents_as_the_full_one(runtime: Runtime) -> None:
    provs = providers(count=4, seed=5)
    for prov in provs:
        runtime.identities.create_organisation(
            SYSTEM, Organisation(prov.id, prov.name, prov.country))
    corpus = list(generate_datasets(240, seed=5, provs=provs))
    for n, ds in enumerate(corpus):
        ds.validation = unknown_code_warnings(ds)
        if n % 3 == 0:  # derived from study-level records: these replace the declared values
            ds.aggregates = {"number_of_individuals": 120 + n, "number_of_studies": 300 + n,
                             "min_age": 40, "max_age": 75, "sexes": ["female"],
                             "modalities": ["MR", "CT"], "body_parts": ["BRAIN"],
                             "temporal_start": "2019-02-01", "temporal_end": "2021-11-30"}
        if n % 7 == 0:
            ds.conditions = [*ds.conditions, "local:UNLISTED-7"]  # an unknown code, kept
        ds.content_hash = content_hash(ds)
    with runtime.database.transaction() as conn:
        DatasetRepository(conn).write_many(corpus, [], seen_run=None)
    ids = [ds.id for ds in corpus if ds.id]
    assert len(ids) == len(corpus)
    with runtime.database.transaction() as conn:
        repo = DatasetRepository(conn)
        full = {ds.id: dataset_document(ds) for ds in repo.get_many(ids)}
        lean = {ds.id: dataset_document(ds) for ds in repo.get_many_for_search(ids)}
        assert repo.get_many_for_search(["not-a-uuid"]) == []
    assert lean == full and len(full) == len(ids)
    derived = full[ids[0]]
    assert derived["number_of_individuals"] == 120 and derived["modalities"] == ["MR", "CT"]
    assert "local:UNLISTED-7" in full[ids[7]]["conditions"]
    # the indexer's own batch: upserts for what exists, a delete for the rest
    assert runtime.indexer is not None
    with runtime.database.transaction() as conn:
        gone = "00000000-0000-4000-8000-000000000000"
        actions = runtime.indexer._actions(conn, [ids[1], gone])
    assert actions == [Upsert(ids[1], full[ids[1]]), Delete(gone)]

