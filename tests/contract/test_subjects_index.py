"""The subjects index: "a CT of the chest at age 50-70" must hold within ONE study, on every
engine (nested documents on OpenSearch, combination tokens on tantivy), and equal the ground
truth computed here from the documents."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue.errors import ValidationError
from catalogue.search.base import SearchBackend
from catalogue.search.query import FacetRequest, Nested, Range, SearchRequest, Terms
from tests.contract.engines import Engines, loaded_engines

BODY_PATHS = {"LUNG": ["LUNG", "CHEST"], "CHEST": ["CHEST"], "BREAST": ["BREAST", "CHEST"],
              "BRAIN": ["BRAIN", "HEAD"], "PROSTATE": ["PROSTATE", "PELVIS"],
              "LIVER": ["LIVER", "ABDOMEN"]}
MODALITIES = ["CT", "MR", "PT", "MG", "US"]
MAKERS = ["Siemens", "GE", "Philips"]


def _subjects(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    docs = []
    for i in range(n):
        birth = rnd.randint(1930, 2005)
        studies = []
        for _ in range(rnd.randint(1, 4)):
            year = rnd.randint(2008, 2025)
            part = rnd.choice(list(BODY_PATHS))
            mods = rnd.sample(MODALITIES, rnd.choice([1, 1, 1, 2]))
            age = max(0, year - birth)
            studies.append({"modalities": mods, "modalities_path": mods,
                            "body_parts": [part], "body_parts_path": BODY_PATHS[part],
                            "manufacturer": rnd.choice(MAKERS), "age_band": age // 5 * 5,
                            "year": year})
        docs.append({"id": f"s{i}", "dataset_id": f"ds{i % 7}",
                     "organisation_id": f"org{i % 3}", "sex": rnd.choice(["female", "male"]),
                     "birth_year": birth, "study_count": len(studies), "studies": studies,
                     "conditions": ["snomed:93880001"] if i % 2 else ["snomed:254837009"],
                     "conditions_path": ["snomed:93880001" if i % 2 else "snomed:254837009",
                                         "snomed:363346000"]})
    return docs


DOCS = _subjects(1500)
# the tricky subject: a CT of the brain and an MR of the chest, never a CT of the chest
DOCS.append({"id": "tricky", "dataset_id": "ds0", "organisation_id": "org0", "sex": "male",
             "birth_year": 1960, "study_count": 2, "conditions": [], "conditions_path": [],
             "studies": [
                 {"modalities": ["CT"], "modalities_path": ["CT"], "body_parts": ["BRAIN"],
                  "body_parts_path": ["BRAIN", "HEAD"], "age_band": 60, "year": 2021},
                 {"modalities": ["MR"], "modalities_path": ["MR"], "body_parts": ["CHEST"],
                  "body_parts_path": ["CHEST"], "age_band": 60, "year": 2022}]})


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory,
            opensearch_urls: list[str]) -> Iterator[Engines]:
    with loaded_engines(tmp_path_factory.mktemp("subjects"), opensearch_urls, "subjects",
                        DOCS) as found:
        yield found


def _study_matches(study: dict[str, Any], flt: Any) -> bool:
    short = flt.field.split(".", 1)[1]
    value = study.get(short)
    values = value if isinstance(value, list) else ([] if value is None else [value])
    if isinstance(flt, Terms):
        return any(v in flt.values for v in values)
    assert isinstance(flt, Range)
    step = 5 if short == "age_band" else 1
    low = None if flt.gte is None else int(flt.gte) // step * step
    high = None if flt.lte is None else int(flt.lte) // step * step
    return bool(values) and (low is None or values[0] >= low) and (
        high is None or values[0] <= high)


def _truth(filters: tuple[Any, ...]) -> list[dict[str, Any]]:
    out = []
    for doc in DOCS:
        ok = True
        for flt in filters:
            if isinstance(flt, Nested):
                ok = ok and any(all(_study_matches(s, f) for f in flt.filters)
                                for s in doc["studies"])
            else:
                assert isinstance(flt, Terms)
                ok = ok and any(v in flt.values for v in doc.get(flt.field, []))
        if ok:
            out.append(doc)
    return out


CT_OF_CHEST = Nested("studies", (Terms("studies.modalities_path", ("CT",)),
                                 Terms("studies.body_parts_path", ("CHEST",))))
QUERIES: dict[str, tuple[Any, ...]] = {
    "CT of the chest, same study": (CT_OF_CHEST,),
    "CT of the chest aged 50-70": (Nested("studies", (
        Terms("studies.modalities_path", ("CT",)), Terms("studies.body_parts_path", ("CHEST",)),
        Range("studies.age_band", gte=50, lte=70))),),
    "PET or MR of the prostate 2015-2020 by Siemens": (Nested("studies", (
        Terms("studies.modalities_path", ("PT", "MR")),
        Terms("studies.body_parts_path", ("PROSTATE",)),
        Range("studies.year", gte=2015, lte=2020),
        Terms("studies.manufacturer", ("Siemens",)))),),
    "lung cancer with a CT of the chest and an MR of the brain (two studies)": (
        Terms("conditions_path", ("snomed:93880001",)), CT_OF_CHEST,
        Nested("studies", (Terms("studies.modalities_path", ("MR",)),
                           Terms("studies.body_parts_path", ("BRAIN",))))),
    "open age range": (Nested("studies", (Range("studies.age_band", gte=80),)),),
}


@pytest.mark.parametrize("engine", ["tantivy", pytest.param("opensearch",
                                                            marks=pytest.mark.opensearch)])
@pytest.mark.parametrize("name", list(QUERIES))
def test_nested_conditions_hold_within_one_study(engines: dict[str, tuple[SearchBackend, str]],
                                                 engine: str, name: str) -> None:
    backend, alias = engines[engine]
    filters = QUERIES[name]
    result = backend.search(alias, SearchRequest(
        filters=filters, size=5000, facets=(FacetRequest("dataset", "dataset_id"),)))
    truth = _truth(filters)
    assert truth, "the generated subjects include matches"
    assert result.total == len(truth)
    assert set(result.ids) == {d["id"] for d in truth}
    assert dict(result.facets["dataset"]) == dict(Counter(d["dataset_id"] for d in truth))


def test_the_tricky_subject_is_not_a_ct_of_the_chest(
        engines: dict[str, tuple[SearchBackend, str]]) -> None:
    for backend, alias in engines.values():
        found = backend.search(alias, SearchRequest(filters=(CT_OF_CHEST,), size=5000))
        assert "tricky" not in found.ids
        either = backend.search(alias, SearchRequest(
            filters=(Nested("studies", (Terms("studies.modalities_path", ("CT",)),)),
                     Nested("studies", (Terms("studies.body_parts_path", ("CHEST",)),))),
            size=5000))
        assert "tricky" in either.ids  # a CT somewhere and a chest study somewhere


def test_two_conditions_on_one_field_of_one_study_are_refused(
        engines: dict[str, tuple[SearchBackend, str]]) -> None:
    for backend, alias in engines.values():
        with pytest.raises(ValidationError):
            backend.search(alias, SearchRequest(filters=(Nested("studies", (
                Terms("studies.modalities_path", ("CT",)),
                Terms("studies.modalities_path", ("PT",)))),)))
