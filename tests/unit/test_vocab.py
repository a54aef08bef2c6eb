"""The controlled vocabularies: structure, resolution of what providers write, autocomplete."""

from __future__ import annotations

import pytest

from catalogue.errors import NotFound
from catalogue.ontology import VOCABULARIES, get_vocabulary, normalise

LUNG, NSCLC, ADENO_LUNG, ROOT = "snomed:93880001", "snomed:254637007", "snomed:254626006", \
    "snomed:363346000"
REQUIRED = {
    "conditions": [ROOT, LUNG, NSCLC, ADENO_LUNG, "snomed:254632001", "snomed:35917007",
                   "snomed:254837009", "snomed:408643008", "snomed:399068003",
                   "snomed:363406005", "snomed:393563007", "snomed:109841003",
                   "snomed:363418001"],
    "modalities": ["CT", "MR", "PT", "MG", "US", "NM", "CR", "DX"],
    "body_parts": ["CHEST", "LUNG", "BREAST", "PROSTATE", "ABDOMEN", "PELVIS", "BRAIN", "HEAD",
                   "LIVER", "PANCREAS", "KIDNEY", "COLON", "WHOLEBODY"],
}


@pytest.mark.parametrize("name", VOCABULARIES)
def test_structure(name: str) -> None:
    vocab = get_vocabulary(name)
    ids = [c.id for c in vocab.concepts()]
    assert len(ids) == len(set(ids))
    assert set(REQUIRED[name]) <= set(ids)
    for concept in vocab.concepts():
        assert concept.labels.get("en"), concept.id
        assert all(vocab.get(p) is not None for p in concept.parents), concept.id
        assert concept.id not in vocab.ancestors(concept.id)  # no cycles
    seen: list[str] = []

    def walk(nodes: list[dict[str, object]]) -> None:
        for node in nodes:
            seen.append(str(node["id"]))
            walk(node["children"])  # type: ignore[arg-type]

    walk(vocab.tree())
    assert sorted(seen) == sorted(ids)  # a tree: every concept once


def test_hierarchy() -> None:
    vocab = get_vocabulary("conditions")
    assert vocab.ancestors(ADENO_LUNG) == [NSCLC, LUNG, ROOT]
    assert ADENO_LUNG in vocab.descendants(LUNG)
    assert "LUNG" in get_vocabulary("body_parts").descendants("CHEST")


@pytest.mark.parametrize(("name", "written", "expected"), [
    ("conditions", "snomed:254626006", ADENO_LUNG),
    ("conditions", "SNOMED CT: 363406005", "snomed:363406005"),
    ("conditions", "SCTID 93880001", LUNG),
    ("conditions", "93880001", LUNG),
    ("conditions", "http://snomed.info/id/93880001", LUNG),
    ("conditions", "https://snomed.info/id/93880001/", LUNG),
    ("conditions", "http://purl.bioontology.org/ontology/SNOMEDCT/93880001", LUNG),
    ("conditions", "C34.9", LUNG),
    ("conditions", "C34.1", LUNG),  # a subcode falls back to its category
    ("conditions", "icd10:C50.9", "snomed:254837009"),
    ("conditions", "ICD-10 C61", "snomed:399068003"),
    ("conditions", "http://id.who.int/icd/release/10/C71.9", "snomed:428061005"),
    ("conditions", "https://cancerimage.eu/ontology/EUCAIM#CLIN1000075", "snomed:399068003"),
    ("conditions", "Lungenkrebs", LUNG),
    ("conditions", "cancer du poumon", LUNG),
    ("conditions", "CARCINOMA POLMONARE", LUNG),
    ("conditions", "icd10:C74.9", "icd10:C74"),
    ("modalities", "ct", "CT"),
    ("modalities", "MRI", "MR"),
    ("modalities", "https://cancerimage.eu/ontology/EUCAIM#IMG1000022", "MR"),
    ("modalities", "http://dicom.nema.org/resources/ontology/DCM/PT", "PT"),
    ("modalities", "Tomodensitometrie", "CT"),
    ("body_parts", "51185008", "CHEST"),
    ("body_parts", "http://snomed.info/id/76752008", "BREAST"),
    ("body_parts", "https://cancerimage.eu/ontology/EUCAIM#BP1000021", "PROSTATE"),
])
def test_resolve(name: str, written: str, expected: str) -> None:
    found = get_vocabulary(name).resolve(written)
    assert found is not None and found.id == expected


@pytest.mark.parametrize("written", ["", "xyz", "snomed:1", "C99.9", "local:ONC-1",
                                     "http://example.org/lung"])
def test_unknown_values_do_not_resolve(written: str) -> None:
    assert get_vocabulary("conditions").resolve(written) is None


def test_normalise_keeps_order_dedupes_and_returns_unknowns() -> None:
    ids, unknown = normalise("conditions", ["C34.9", LUNG, "local:x", "icd10:C61", "local:x"])
    assert ids == [LUNG, "snomed:399068003"]
    assert unknown == ["local:x"]


def test_suggest() -> None:
    conditions = get_vocabulary("conditions")
    assert conditions.suggest("lung")[0]["id"] == LUNG
    assert ADENO_LUNG in [s["id"] for s in conditions.suggest("adeno")]
    assert conditions.suggest("adeno lung")[0]["id"] == ADENO_LUNG  # every word must match
    assert conditions.suggest("C34")[0]["id"] == LUNG
    french = get_vocabulary("modalities").suggest("tomo", lang="fr")
    assert french[0]["id"] == "CT" and french[0]["label"] == "Tomodensitométrie"
    assert conditions.suggest("zzz") == []


def test_search_terms_cover_languages_and_codes() -> None:
    terms = get_vocabulary("conditions").search_terms(LUNG)
    assert {"Lungenkrebs", "Cancer du poumon", "icd10:C34", "snomed:93880001"} <= set(terms)


def test_unknown_vocabulary() -> None:
    with pytest.raises(NotFound):
        get_vocabulary("colours")


def test_generated_eucaim_body_parts_resolve_to_their_dicom_terms() -> None:
    from catalogue.testing.dcat_generator import EUCAIM, EUCAIM_BODY_PART

    body_parts = get_vocabulary("body_parts")
    for term, code in EUCAIM_BODY_PART.items():
        found = body_parts.resolve(EUCAIM + code)
        assert found is not None and found.id == term, code
    # the EUCAIM example's code for its prostate dataset is "Neck and chest" in EUCAIM's list
    assert body_parts.resolve(EUCAIM + "BP1000233") is None
