"""Study-level records reach the subjects index through the outbox and rebuilds, normalised to
the vocabularies (hierarchies included), with per-study conditions kept together."""

from __future__ import annotations

from datetime import date
from typing import Any

from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.search.query import FacetRequest, Nested, Range, SearchRequest, Terms
from catalogue.store.audit import enqueue
from catalogue.store.datasets import DatasetRepository, content_hash


def _store(rt: Runtime) -> tuple[str, list[str]]:
    rt.identities.create_organisation(SYSTEM, Organisation("org-s", "S", "ES"))
    ds = Dataset(identifier="cohort", organisation_id="org-s", title={"en": "Cohort"},
                 status=DatasetStatus.PUBLISHED, countries=["ES"])
    ds.content_hash = content_hash(ds)
    subjects: list[tuple[str, int, list[dict[str, Any]], list[tuple[str, str]]]] = [
        ("female", 1960, [{"m": ["CT"], "b": ["LUNG"], "age": 61, "month": date(2021, 3, 1)}],
         [("snomed", "254626006")]),
        ("male", 1950, [{"m": ["CT"], "b": ["BRAIN"], "age": 70, "month": date(2020, 1, 1)},
                        {"m": ["MR"], "b": ["CHEST"], "age": 71, "month": date(2021, 1, 1)}],
         [("icd10", "C34.9")]),
        ("male", 1990, [{"m": ["MR"], "b": ["PROSTATE"], "age": 30, "month": date(2020, 6, 1)}],
         [("local", "X-1")]),
    ]
    ids: list[str] = []
    with rt.database.transaction() as conn:
        DatasetRepository(conn).write_many([ds], [])
        for n, (sex, birth, studies, codes) in enumerate(subjects):
            row = conn.execute(
                "INSERT INTO subjects (dataset_id, subject_key, sex, birth_year) "
                "VALUES (%s, %s, %s, %s) RETURNING id", (ds.id, f"k{n}", sex, birth)).fetchone()
            assert row is not None
            sid = row["id"]
            ids.append(str(sid))
            for m, study in enumerate(studies):
                conn.execute(
                    "INSERT INTO imaging_studies (subject_id, study_key, modalities, body_parts, "
                    "study_month, age_at_study) VALUES (%s, %s, %s, %s, %s, %s)",
                    (sid, f"st{n}-{m}", study["m"], study["b"], study["month"], study["age"]))
            for system, code in codes:
                conn.execute("INSERT INTO conditions (subject_id, system, code) "
                             "VALUES (%s, %s, %s)", (sid, system, code))
        enqueue(conn, "subject", ids)
    assert ds.id is not None
    return ds.id, ids


CT_OF_CHEST_60_70 = Nested("studies", (Terms("studies.modalities_path", ("CT",)),
                                       Terms("studies.body_parts_path", ("CHEST",)),
                                       Range("studies.age_band", gte=60, lte=70)))


def test_outbox_and_rebuild_fill_the_subjects_index(runtime: Runtime) -> None:
    rt = runtime
    dataset_id, ids = _store(rt)
    assert rt.indexer is not None and rt.search is not None
    assert rt.indexer.drain() >= 3
    alias = rt.search.logical_name("subjects")
    found = rt.search.search(alias, SearchRequest(filters=(CT_OF_CHEST_60_70,), size=10))
    assert found.ids == [ids[0]]  # the LUNG study is under CHEST; subject 2's CT is of the brain
    lung = rt.search.search(alias, SearchRequest(
        filters=(Terms("conditions_path", ("snomed:93880001",)),), size=10,
        facets=(FacetRequest("dataset", "dataset_id"),)))
    assert set(lung.ids) == {ids[0], ids[1]}  # SNOMED adenocarcinoma of lung and ICD-10 C34.9
    assert lung.facets["dataset"] == [(dataset_id, 2)]
    unknown = rt.search.search(alias, SearchRequest(filters=(Terms("conditions", ("local:X-1",)),)))
    assert unknown.ids == [ids[2]]  # unknown codes kept as given
    result = rt.indexer.rebuild(index="subjects")
    assert result["documents"] == 3 and result["previous"] != result["index"]
    again = rt.search.search(alias, SearchRequest(filters=(CT_OF_CHEST_60_70,), size=10))
    assert again.ids == [ids[0]]
