"""The dataset search API end to end: real PostgreSQL, the real index, the HTTP layer."""

from __future__ import annotations

from typing import Any

import pytest

from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from tests.integration.test_api_auth import assert_error, auth

DATASETS: list[dict[str, Any]] = [
    {"identifier": "lung-adeno", "organisation_id": "org-a", "status": "published",
     "title": {"en": "Lung adenocarcinoma CT cohort", "de": "Lungenadenokarzinom-CT-Kohorte"},
     "description": {"en": "Chest CT with radiomics features and segmentations."},
     "conditions": ["snomed:254626006"], "modalities": ["CT"], "body_parts": ["LUNG"],
     "countries": ["ES"], "number_of_individuals": 300, "min_age": 40, "max_age": 80,
     "modified": "2024-03-01T00:00:00+00:00"},
    {"identifier": "breast-mg", "organisation_id": "org-b", "status": "published",
     "title": {"en": "Breast screening mammography"},
     "description": {"en": "Mammograms and breast MRI of a screening programme."},
     "conditions": ["icd10:C50.9"], "modalities": ["MG", "MR"], "body_parts": ["BREAST"],
     "countries": ["DE"], "number_of_individuals": 1200, "min_age": 50, "max_age": 70,
     "modified": "2023-05-01T00:00:00+00:00"},
    {"identifier": "prostate-mr", "organisation_id": "org-a", "status": "published",
     "title": {"en": "Prostate MRI", "nl": "Prostaat-MRI"},
     "description": {"en": "Biparametric prostate MRI."},
     "conditions": ["snomed:399068003"], "modalities": ["MR"], "body_parts": ["PROSTATE"],
     "countries": ["NL"], "number_of_individuals": 800, "min_age": 45, "max_age": 85,
     "modified": "2025-01-01T00:00:00+00:00"},
    {"identifier": "lung-draft", "organisation_id": "org-b", "status": "draft",
     "title": {"en": "Unpublished lung CT"}, "conditions": ["snomed:93880001"],
     "modalities": ["CT"], "body_parts": ["CHEST"], "countries": ["DE"]},
    {"identifier": "pet-local", "organisation_id": "org-c", "status": "published",
     "title": {"en": "Whole-body PET/CT of lymphoma"},
     "conditions": ["local:ONC-7"], "modalities": ["PT", "CT"], "body_parts": ["WHOLEBODY"],
     "countries": ["ES"], "number_of_individuals": 90,
     "modified": "2022-01-01T00:00:00+00:00"},
]


@pytest.fixture
def world(runtime: Runtime, client: Any) -> dict[str, str]:
    ids = runtime.identities
    for org, country in (("org-a", "ES"), ("org-b", "DE"), ("org-c", "ES")):
        ids.create_organisation(SYSTEM, Organisation(org, f"Provider {org[-1].upper()}", country))
    tokens = {}
    for key, user in {"admin": User("", "admin1", Role.ADMIN),
                      "provider_b": User("", "prov-b", Role.PROVIDER, "org-b"),
                      "provider_a": User("", "prov-a", Role.PROVIDER, "org-a")}.items():
        ids.create_user(SYSTEM, user)
        tokens[key] = ids.issue_token(SYSTEM, user.username).secret
    for body in DATASETS:
        r = client.post("/api/v1/datasets", json=body, headers=auth(tokens["admin"]))
        assert r.status_code == 201, r.json
        tokens[body["identifier"]] = r.json["id"]
    assert runtime.indexer is not None
    runtime.indexer.drain()
    return tokens


def _search(client: Any, query: str, token: str = "") -> dict[str, Any]:
    r = client.get(f"/api/v1/datasets?{query}", headers=auth(token))
    assert r.status_code == 200, r.get_data(as_text=True)
    return dict(r.json)


def _identifiers(body: dict[str, Any]) -> set[str]:
    return {h["identifier"] for h in body["hits"]}


def _facet(body: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in body["facets"] if f["name"] == name)


def _flat(buckets: list[dict[str, Any]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for b in buckets:
        out[b["key"]] = b["count"]
        out.update(_flat(b.get("children", [])))
    return out


@pytest.mark.parametrize("q", ["lung", "Lungenkrebs", "cancer du poumon", "C34", "93880001",
                               "adenocarcinomas", "Lungenkrebs tomodensitométrie"])
def test_text_finds_descendant_codes_in_any_language(client: Any, world: dict[str, str],
                                                     q: str) -> None:
    body = _search(client, f"q={q}")
    assert _identifiers(body) == {"lung-adeno"}  # never the draft


def test_text_matches_modality_labels_in_other_languages(client: Any,
                                                         world: dict[str, str]) -> None:
    assert _identifiers(_search(client, "q=tomodensitométrie")) == {"lung-adeno", "pet-local"}


def test_concept_filter_matches_descendants_unless_exact(client: Any,
                                                         world: dict[str, str]) -> None:
    assert _identifiers(_search(client, "conditions=snomed:93880001")) == {"lung-adeno"}
    assert _identifiers(_search(client, "conditions=C34.9")) == {"lung-adeno"}
    assert _search(client, "conditions=snomed:93880001&descendants=false")["total"] == 0
    assert _identifiers(_search(client, "body_parts=CHEST")) == {"lung-adeno", "breast-mg"}
    # unknown codes are kept: filterable as given
    assert _identifiers(_search(client, "conditions=local:ONC-7")) == {"pet-local"}


def test_multi_select_facets_or_within_and_across(client: Any, world: dict[str, str]) -> None:
    body = _search(client, "modalities=CT&modalities=MG")
    assert _identifiers(body) == {"lung-adeno", "breast-mg", "pet-local"}
    # the selected facet still counts its other values (computed without its own selection)
    assert _flat(_facet(body, "modalities")["buckets"]) == {"CT": 2, "MG": 1, "MR": 2, "PT": 1}
    selected = {b["key"] for b in _facet(body, "modalities")["buckets"] if b["selected"]}
    assert selected == {"CT", "MG"}
    # other facets count within the selection
    assert _flat(_facet(body, "countries")["buckets"]) == {"ES": 2, "DE": 1}
    both = _search(client, "modalities=CT&modalities=MG&countries=DE")
    assert _identifiers(both) == {"breast-mg"}
    assert _flat(_facet(both, "countries")["buckets"]) == {"ES": 2, "DE": 1}
    assert _flat(_facet(both, "modalities")["buckets"]) == {"MG": 1, "MR": 1}


def test_hierarchical_facet_nests_children_with_labels(client: Any,
                                                       world: dict[str, str]) -> None:
    body = _search(client, "lang=de")
    facet = _facet(body, "conditions")
    assert facet["hierarchical"] and facet["vocabulary"] == "conditions"
    counts = _flat(facet["buckets"])
    # a dataset counts once under every ancestor of its code
    assert counts["snomed:93880001"] == 1 and counts["snomed:254626006"] == 1
    assert counts["snomed:363346000"] == 3  # lung, breast (via ICD-10), prostate
    assert counts["local:ONC-7"] == 1
    root = next(b for b in facet["buckets"] if b["key"] == "snomed:363346000")
    assert "snomed:254626006" not in {c["key"] for c in root["children"]}  # nested deeper
    labels = {b["key"]: b["label"] for b in facet["buckets"]}
    assert labels["local:ONC-7"] == "local:ONC-7"
    assert labels["snomed:363346000"] != "snomed:363346000"  # a German or English label
    providers = {b["key"]: b["label"] for b in _facet(body, "organisation_id")["buckets"]}
    assert providers["org-a"] == "Provider A"


def test_highlights_mark_matching_words(client: Any, world: dict[str, str]) -> None:
    body = _search(client, "q=radiomics segmentation")
    hit = body["hits"][0]
    assert "<mark>radiomics</mark>" in hit["highlights"]["description"]
    assert "<mark>segmentations</mark>" in hit["highlights"]["description"]  # stemmed match


def test_sorted_deep_paging_with_after(client: Any, world: dict[str, str]) -> None:
    seen: list[str] = []
    query = "sort=-number_of_individuals&size=1"
    body = _search(client, query)
    while True:
        seen.extend(h["identifier"] for h in body["hits"])
        if body["next_after"] is None:
            break
        body = _search(client, f"{query}&after={body['next_after']}")
    assert seen == ["breast-mg", "prostate-mr", "lung-adeno", "pet-local"]


def test_ranges(client: Any, world: dict[str, str]) -> None:
    assert _identifiers(_search(client, "individuals_min=500")) == {"breast-mg", "prostate-mr"}
    assert _identifiers(_search(client, "age_min=82")) == {"prostate-mr"}
    assert _identifiers(_search(client, "modified_since=2024-01-01")) == {
        "lung-adeno", "prostate-mr"}


def test_provider_sees_own_drafts_only(client: Any, world: dict[str, str]) -> None:
    assert "lung-draft" in _identifiers(_search(client, "q=lung", world["provider_b"]))
    assert "lung-draft" not in _identifiers(_search(client, "q=lung", world["provider_a"]))
    assert "lung-draft" not in _identifiers(_search(client, "q=lung"))


@pytest.mark.parametrize("query", ["colour=red", "sort=title", "q=lung&after=5", "page=0",
                                   "size=1000", "individuals_min=many",
                                   "modified_since=yesterday"])
def test_bad_parameters_are_400(client: Any, world: dict[str, str], query: str) -> None:
    assert_error(client.get(f"/api/v1/datasets?{query}"), 400, "invalid_request")


def test_unknown_codes_are_reported_on_the_dataset(client: Any, world: dict[str, str]) -> None:
    r = client.get(f"/api/v1/datasets/{world['pet-local']}")
    messages = [v["message"] for v in r.json["validation"]]
    assert any("local:ONC-7" in m and "vocabulary" in m for m in messages)


def test_vocabulary_tree_and_autocomplete(client: Any, world: dict[str, str]) -> None:
    listing = client.get("/api/v1/vocabularies").json["vocabularies"]
    assert {v["name"] for v in listing} == {"conditions", "modalities", "body_parts"}
    tree = client.get("/api/v1/vocabularies/conditions").json["tree"]
    assert tree and all("children" in node for node in tree)
    found = client.get("/api/v1/vocabularies/conditions?q=lung").json["suggestions"]
    assert found[0]["id"] in {"snomed:93880001", "snomed:254626006", "snomed:254637007",
                              "snomed:254632001"}
    french = client.get("/api/v1/vocabularies/modalities?q=tomo&lang=fr").json["suggestions"]
    assert french[0]["id"] == "CT"
    assert_error(client.get("/api/v1/vocabularies/colours"), 404, "not_found")


def test_cached_hits_follow_every_write_to_their_rows(runtime: Runtime, client: Any,
                                                      world: dict[str, str]) -> None:
    """Search hits are reused from a per-process cache while their rows are unchanged: a write
    that bypasses the services (no version bump) and a removed distribution still show at once,
    and the hits equal the dataset API's answer."""
    first = _search(client, "q=prostate")
    again = _search(client, "q=prostate")  # served from the caches
    assert first["hits"] == again["hits"]
    dataset_id = world["prostate-mr"]
    hit = next(h for h in again["hits"] if h["id"] == dataset_id)
    single = client.get(f"/api/v1/datasets/{dataset_id}").json
    assert {k: v for k, v in hit.items() if k != "highlights"} == single
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE datasets SET title = %s WHERE id = %s",
                     ('{"en": "Prostate MRI, renamed"}', dataset_id))
        conn.execute("INSERT INTO distributions (dataset_id, position, access_url) "
                     "VALUES (%s, 0, 'https://example.org/prostate')", (dataset_id,))
    hit = next(h for h in _search(client, "q=prostate")["hits"] if h["id"] == dataset_id)
    assert hit["title"] == {"en": "Prostate MRI, renamed"}
    assert [d["access_url"] for d in hit["distributions"]] == ["https://example.org/prostate"]
    with runtime.database.transaction() as conn:
        conn.execute("DELETE FROM distributions WHERE dataset_id = %s", (dataset_id,))
    hit = next(h for h in _search(client, "q=prostate")["hits"] if h["id"] == dataset_id)
    assert hit["distributions"] == []
    assert hit["title"] == {"en": "Prostate MRI, renamed"}
