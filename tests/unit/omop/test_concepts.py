"""OMOP concept mapping: condition codings, modalities, body parts, imaging procedures, sex;
source settings and URLs."""

from __future__ import annotations

import pytest

from catalogue.harvest.omop import OmopHarvester, check_source_url, describe
from catalogue.omop import (
    Concept,
    ConceptCache,
    OmopError,
    OmopSettings,
    body_part_of,
    body_parts_in_name,
    condition_codes,
    is_imaging_procedure,
    modalities_of,
    sex_of,
)
from catalogue.omop.source import ProcedureRow


def concept(name: str, vocabulary: str = "SNOMED", code: str = "0", concept_id: int = 1,
            domain: str = "Procedure") -> Concept:
    return Concept(concept_id, name, domain, vocabulary, "", code)


def test_condition_codes_keep_their_vocabulary() -> None:
    assert condition_codes(concept("Non-small cell lung cancer", code="254637007")) == [
        ("snomed", "254637007")]
    assert condition_codes(concept("Malignant neoplasm of prostate", "ICD10CM", "C61")) == [
        ("icd10", "C61")]
    assert condition_codes(concept("Bösartige Neubildung der Prostata", "ICD10GM", "C61")) == [
        ("icd10", "C61")]
    # an ICD-O-3 combination gives its morphology and topography
    assert condition_codes(concept("Adenocarcinoma of upper lobe", "ICDO3", "8140/3-C34.1")) == [
        ("icdo3", "8140/3"), ("icdo3", "C34.1")]
    assert condition_codes(concept("Chest pain", "Read", "182..")) == []
    assert condition_codes(None) == []


@pytest.mark.parametrize(("name", "vocabulary", "code", "expected"), [
    ("Computed tomography", "DICOM", "CT", ["CT"]),  # OHDSI imaging vocabulary
    ("Magnetic resonance", "DICOM", "MR", ["MR"]),
    ("Plain chest X-ray", "SNOMED", "399208008", ["DX"]),
    ("Echocardiography", "SNOMED", "40701008", ["US"]),
    ("Bone density scan", "SNOMED", "312681000", ["BMD"]),
    ("PET/CT of whole body", "SNOMED", "0", ["PT", "CT"]),
    ("MRI of pelvis", "Local", "x", ["MR"]),
    ("Ultrasound scan for fetal viability", "SNOMED", "169230002", ["US"]),
    ("Diagnostic mammography", "CPT4", "77065", ["MG"]),
    ("Positron emission tomography", "LOINC", "0", ["PT"]),
    ("Nuclear Medicine", "Local", "?", ["NM"]),  # a label of the modalities vocabulary
    ("Colonoscopy", "SNOMED", "73761001", []),
    ("Electroencephalogram", "SNOMED", "54550000", []),
])
def test_modalities(name: str, vocabulary: str, code: str, expected: list[str]) -> None:
    assert modalities_of(concept(name, vocabulary, code)) == expected


def test_source_modality_table_comes_first() -> None:
    assert modalities_of(concept("Some local exam", "Local", "X1", concept_id=42),
                         {42: ("XA",)}) == ["XA"]


def test_imaging_procedures() -> None:
    assert is_imaging_procedure(concept("Plain chest X-ray", code="399208008"))
    assert is_imaging_procedure(concept("Videofluoroscopy swallow", code="241149003"))
    assert not is_imaging_procedure(concept(
        "Percutaneous mechanical thrombectomy of portal vein using fluoroscopic guidance"))
    assert not is_imaging_procedure(concept("CT guided biopsy of lung"))
    assert not is_imaging_procedure(concept("Medication Reconciliation"))
    assert is_imaging_procedure(concept("Fetal anatomy study", concept_id=7), {7: ("US",)})


def test_body_parts() -> None:
    assert body_part_of(concept("Thoracic structure", code="51185008")) == "CHEST"
    assert body_part_of(concept("Lung structure", code="39607008")) == "LUNG"
    assert body_part_of(concept("Knee region structure", code="72696002")) == "snomed:72696002"
    assert body_part_of(concept("Liver", "Local", "L1")) == "LIVER"  # by its name
    assert body_parts_in_name("Plain chest X-ray") == ("CHEST",)
    assert body_parts_in_name("Echocardiography") == ("HEART",)
    assert body_parts_in_name("MRI of head and neck") == ("HEADNECK", "HEAD", "NECK")
    assert body_parts_in_name("Detection of chromosomal aneuploidy") == ()


def test_sex() -> None:
    assert [sex_of(i) for i in (8507, 8532, 8551, 8521, 0, None, 12345)] == [
        "male", "female", "unknown", "other", None, None, "unknown"]


def test_concept_cache_looks_up_each_id_once() -> None:
    asked: list[list[int]] = []

    def lookup(ids: list[int]) -> list[Concept]:
        asked.append(ids)
        return [concept("x", concept_id=i) for i in ids if i != 3]

    cache = ConceptCache(lookup)
    cache.load([1, 2, 3, 0, None, 2])
    cache.load([1, 3])
    assert asked == [[1, 2, 3]]
    assert cache.unknown(3) and not cache.unknown(1) and not cache.unknown(0)
    assert cache.get(4) is not None and asked[-1] == [4]


def test_age_from_the_exact_birth_date_or_the_year() -> None:
    from datetime import date, datetime

    def person(y: int | None, m: int | None, d: int | None,
               born: datetime | None = None) -> ProcedureRow:
        return ProcedureRow(1, 1, 1, None, "", True, 8507, y, m, d, born)

    age = OmopHarvester._age
    assert age(person(1960, 6, 15), date(2020, 6, 14)) == 59
    assert age(person(1960, 6, 15), date(2020, 6, 15)) == 60
    assert age(person(1960, 2, 29), date(2021, 2, 28)) == 60
    assert age(person(1960, None, None, datetime(1960, 6, 15)), date(2020, 6, 14)) == 59
    assert age(person(1960, None, None), date(2020, 1, 1)) == 60  # year only
    assert age(person(1960, 6, None), date(2020, 5, 1)) == 59
    assert age(person(2030, 1, 1), date(2020, 1, 1)) is None
    assert age(person(None, None, None), date(2020, 1, 1)) is None


def test_source_urls_never_carry_passwords() -> None:
    params = check_source_url("postgresql://reader@db.example.org:5433/omop?sslmode=require")
    assert params["host"] == "db.example.org" and "password" not in params
    assert describe(params) == "db.example.org:5433/omop"
    for url in ("postgresql://reader:secret@db.example.org/omop",
                "postgresql://db.example.org/omop?password=secret",
                "postgresql://db.example.org/omop?service=prod"):
        with pytest.raises(ValueError, match="must not carry"):
            check_source_url(url)
    with pytest.raises(ValueError, match="postgresql://"):
        check_source_url("https://db.example.org/omop")


def test_settings() -> None:
    settings = OmopSettings.from_config({"schema": "cdm_v5", "imaging_concepts": {"42": "ct"},
                                         "fetch_size": "2000", "incremental": True})
    assert settings.schema == "cdm_v5" and settings.imaging_concepts == {42: ("CT",)}
    assert settings.fetch_size == 2000 and settings.incremental
    for bad in ({"studies_from": "notes"}, {"fetch_size": 0}, {"work_mem": "1; DROP"},
                {"imaging_concepts": ["CT"]}, {"schema": 5}, {"date_precision": "day"}):
        with pytest.raises(OmopError):
            OmopSettings.from_config(bad)
