"""The generated search corpus is deterministic, and its distributions look like practice."""

from __future__ import annotations

from collections import Counter

import pytest

from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.ontology import get_vocabulary, normalise
from catalogue.testing.search_corpus import (
    COUNTRIES,
    IMAGING_CATEGORY,
    generate_datasets,
    providers,
)

LUNG, BREAST, PROSTATE, COLORECTAL = (
    "snomed:93880001", "snomed:254837009", "snomed:399068003", "snomed:363406005")


@pytest.fixture(scope="module")
def corpus() -> list[Dataset]:
    return list(generate_datasets(5000, seed=0))


def _organ(code: str) -> str | None:
    """The organ-level concept of a condition code (the child of "malignant neoplastic
    disease"), or None for an unknown code."""
    ids, _ = normalise("conditions", [code])
    if not ids:
        return None
    path = [ids[0], *get_vocabulary("conditions").ancestors(ids[0])]
    return path[-2] if len(path) > 1 else path[0]


def _fingerprint(data: list[Dataset]) -> list[tuple[object, ...]]:
    return [(d.identifier, d.title, d.description, d.conditions, d.modalities, d.status,
             d.number_of_individuals, d.modified) for d in data]


def test_same_seed_same_corpus_other_seed_other_corpus() -> None:
    first = _fingerprint(list(generate_datasets(300, seed=1)))
    assert first == _fingerprint(list(generate_datasets(300, seed=1)))
    assert first != _fingerprint(list(generate_datasets(300, seed=2)))


def test_providers_spread_over_fifteen_countries() -> None:
    provs = providers()
    assert len(provs) == 30
    assert len({p.id for p in provs}) == 30
    assert {p.country for p in provs} == set(COUNTRIES)
    assert len(COUNTRIES) == 15
    assert all(p.id.startswith(f"prov-{p.country.lower()}-") for p in provs)
    assert len(providers(40)) == 40


def test_identifiers_unique_and_every_provider_used(corpus: list[Dataset]) -> None:
    assert len({d.identifier for d in corpus}) == len(corpus)
    assert {d.organisation_id for d in corpus} == {p.id for p in providers()}
    country = {p.id: p.country for p in providers()}
    assert all(d.countries == [country[d.organisation_id]] for d in corpus)
    assert all(d.id is None and d.graph is None for d in corpus)


def test_status_mostly_published(corpus: list[Dataset]) -> None:
    statuses = Counter(d.status for d in corpus)
    assert 0.80 <= statuses[DatasetStatus.PUBLISHED] / len(corpus) <= 0.95
    assert statuses[DatasetStatus.DRAFT] > statuses[DatasetStatus.WITHDRAWN] > 0


def test_four_most_common_cancers(corpus: list[Dataset]) -> None:
    organs = Counter(o for d in corpus if (o := _organ(d.conditions[0])) is not None)
    assert {k for k, _ in organs.most_common(4)} == {LUNG, BREAST, PROSTATE, COLORECTAL}


def test_codes_mostly_snomed_some_icd10_few_unknown(corpus: list[Dataset]) -> None:
    systems = Counter(c.split(":")[0] for d in corpus for c in d.conditions)
    total = sum(systems.values())
    assert systems["snomed"] / total > 0.75
    assert 0.08 <= systems["icd10"] / total <= 0.2
    assert 0.005 <= systems["local"] / total <= 0.04
    known = {c for d in corpus for c in d.conditions if not c.startswith("local:")}
    assert all(normalise("conditions", [c])[0] for c in known)  # every code resolves
    for vocabulary, attribute in (("modalities", "modalities"), ("body_parts", "body_parts")):
        values = {v for d in corpus for v in getattr(d, attribute)}
        assert normalise(vocabulary, sorted(values))[1] == []


def test_modalities_and_body_parts_follow_the_cancer(corpus: list[Dataset]) -> None:
    def only(organ: str) -> list[Dataset]:
        return [d for d in corpus if len(d.conditions) == 1 and _organ(d.conditions[0]) == organ]

    prostate = only(PROSTATE)
    assert prostate
    assert all({"MR", "PT"} & set(d.modalities) for d in prostate)
    assert all({"PELVIS", "PROSTATE"} & set(d.body_parts) for d in prostate)
    assert all(d.sexes == ["male"] for d in prostate)
    lung = only(LUNG)
    assert all({"CT", "PT"} & set(d.modalities) for d in lung)
    assert all({"CHEST", "LUNG"} & set(d.body_parts) for d in lung)
    breast = only(BREAST)
    assert all({"MG", "MR", "US"} & set(d.modalities) and "BREAST" in d.body_parts
               for d in breast)
    assert sum(d.sexes == ["female"] for d in breast) / len(breast) > 0.9
    glioblastoma = only("snomed:428061005")  # brain neoplasms, glioblastoma among them
    assert all("MR" in d.modalities and {"BRAIN", "HEAD"} & set(d.body_parts)
               for d in glioblastoma)
    assert any(len(d.conditions) == 2 for d in corpus)


def test_titles_in_the_providers_language(corpus: list[Dataset]) -> None:
    assert all("en" in d.title for d in corpus)
    german = [d for d in corpus if d.countries == ["DE"]]
    french = [d for d in corpus if d.countries == ["FR"]]
    irish = [d for d in corpus if d.countries == ["IE"]]
    assert german and all("de" in d.title for d in german)
    assert french and all("fr" in d.title for d in french)
    assert irish and all(set(d.title) == {"en"} for d in irish)
    languages = {lang for d in corpus for lang in d.title}
    assert languages >= {"en", "de", "fr", "es", "it", "nl", "pt", "el", "pl", "sv", "fi", "cs",
                         "hu"}
    assert any("Lungenkrebs" in d.title.get("de", "") for d in german)


def test_descriptions_keywords_and_numbers_are_plausible(corpus: list[Dataset]) -> None:
    names = {p.id: p.name for p in providers()}
    sentences = [d.description["en"].replace(names[d.organisation_id], "").count(". ") + 1
                 for d in corpus]
    assert set(sentences) == {2, 3}
    assert all(3 <= len(d.keywords) <= 6 for d in corpus)
    assert any("radiomics" in d.description["en"] for d in corpus)
    sizes = sorted(d.number_of_individuals or 0 for d in corpus)
    assert 200 <= sizes[len(sizes) // 2] <= 450
    assert sizes[0] >= 10 and sizes[-1] <= 50_000
    assert all(
        (d.number_of_individuals or 0) <= (d.number_of_studies or 0)
        <= 5 * (d.number_of_individuals or 0) for d in corpus)
    assert all(d.min_age is not None and d.max_age is not None and d.min_age < d.max_age
               for d in corpus)
    assert any((d.max_age or 99) <= 20 for d in corpus)  # some paediatric cohorts
    access = Counter((d.access_rights or "").rsplit("/", 1)[-1] for d in corpus)
    assert access.most_common(1)[0][0] == "RESTRICTED"
    assert all(d.issued and d.modified and d.issued <= d.modified for d in corpus)
    assert all(d.modified and d.modified.tzinfo is not None for d in corpus)
    # health categories are vocabulary IRIs (a bare code is left out of the DCAT export)
    categories = Counter(c for d in corpus for c in d.health_categories)
    assert set(categories) == {IMAGING_CATEGORY}
    assert categories[IMAGING_CATEGORY] > 0.8 * len(corpus)
    years = Counter(d.modified.year for d in corpus if d.modified)
    assert min(years) >= 2015 and max(years) <= 2026
    assert years[2025] > years[2016]  # recent descriptions are more common
    assert all(d.temporal_start and d.temporal_end and d.temporal_start < d.temporal_end
               for d in corpus)
