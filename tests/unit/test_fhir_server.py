"""The stand-in FHIR server (catalogue.testing.fhir_server) follows FHIR search semantics, so
harvester tests against it can be trusted. Runs on the Synthea sample in tests/data/fhir/synthea."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from catalogue.testing.fhir_server import FHIRServer, load_ndjson, serve_fhir

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "fhir" / "synthea"
FHIR_JSON = "application/fhir+json"


def _ndjson_ids(kind: str) -> list[str]:
    return [r["id"] for r in load_ndjson(SAMPLE / f"{kind}.ndjson")]


def _pages(url: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Follow ``next`` links from ``url``; yields each Bundle."""
    next_url: str | None = url
    seen = 0
    while next_url is not None:
        response = requests.get(next_url, timeout=10, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"].startswith(FHIR_JSON)
        bundle = response.json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        yield bundle
        links = {link["relation"]: link["url"] for link in bundle["link"]}
        assert "self" in links
        next_url = links.get("next")
        seen += 1
        assert seen < 10_000, "paging does not end"


@pytest.fixture(scope="module")
def server() -> Iterator[FHIRServer]:
    with FHIRServer(SAMPLE, page_size=7) as srv:
        yield srv


def test_sample_is_synthea_r4_with_identifying_patients() -> None:
    patients = load_ndjson(SAMPLE / "Patient.ndjson")
    studies = load_ndjson(SAMPLE / "ImagingStudy.ndjson")
    conditions = load_ndjson(SAMPLE / "Condition.ndjson")
    assert 40 <= len(patients) <= 80 and studies and conditions
    assert all(p["name"] and p["birthDate"] and p["address"] and p["identifier"]
               for p in patients)
    ids = {p["id"] for p in patients}
    assert {r["subject"]["reference"] for r in studies + conditions} <= {
        f"Patient/{i}" for i in ids}
    modalities = {s["modality"]["code"] for r in studies for s in r["series"]}
    assert "CT" in modalities and len(modalities) >= 3
    assert any("lung" in json.dumps(c["code"]).lower() for c in conditions)


def test_metadata_names_the_fhir_version() -> None:
    with FHIRServer(SAMPLE, token="t", fhir_version="4.0.1") as srv:
        response = requests.get(f"{srv.base_url}/metadata", timeout=10)  # public, no token
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith(FHIR_JSON)
    capability = response.json()
    assert capability["resourceType"] == "CapabilityStatement"
    assert capability["fhirVersion"] == "4.0.1"
    assert {"Patient", "ImagingStudy", "Condition"} <= {
        r["type"] for r in capability["rest"][0]["resource"]}


@pytest.mark.parametrize("kind", ["Patient", "ImagingStudy", "Condition"])
def test_paging_visits_every_resource_exactly_once(server: FHIRServer, kind: str) -> None:
    expected = _ndjson_ids(kind)
    seen: list[str] = []
    bundles = list(_pages(f"{server.base_url}/{kind}?_count=23"))
    for bundle in bundles:
        assert bundle["total"] == len(expected)
        assert len(bundle.get("entry", [])) <= 23
        for entry in bundle.get("entry", []):
            assert entry["search"]["mode"] == "match"
            resource = entry["resource"]
            assert entry["fullUrl"] == f"{server.base_url}/{kind}/{resource['id']}"
            seen.append(resource["id"])
    assert Counter(seen) == Counter(expected)
    assert len(bundles) == -(-len(expected) // 23)
    assert "next" not in {link["relation"] for link in bundles[-1]["link"]}


def test_default_page_size_and_post_search(server: FHIRServer) -> None:
    first = next(_pages(f"{server.base_url}/Condition"))
    assert len(first["entry"]) == 7
    response = requests.post(f"{server.base_url}/Condition/_search", data={"_count": "3"},
                             timeout=10)
    assert response.status_code == 200 and len(response.json()["entry"]) == 3


@pytest.mark.parametrize("kind", ["ImagingStudy", "Condition"])
def test_include_adds_each_subject_once_per_page(server: FHIRServer, kind: str) -> None:
    total = len(_ndjson_ids(kind))
    for bundle in _pages(f"{server.base_url}/{kind}?_count=25&_include={kind}:subject"):
        entries = bundle["entry"]
        matches = [e["resource"] for e in entries if e["search"]["mode"] == "match"]
        included = [e["resource"] for e in entries if e["search"]["mode"] == "include"]
        assert all(r["resourceType"] == kind for r in matches)
        assert all(r["resourceType"] == "Patient" for r in included)
        included_refs = [f"Patient/{p['id']}" for p in included]
        assert len(included_refs) == len(set(included_refs))
        assert set(included_refs) == {r["subject"]["reference"] for r in matches}
        assert bundle["total"] == total  # includes are not counted


def test_unsupported_include_or_parameter_is_400(server: FHIRServer) -> None:
    for query in ("_include=ImagingStudy:endpoint", "_include=Condition:subject",
                  "modality=CT", "_lastUpdated=gtyesterday"):
        response = requests.get(f"{server.base_url}/ImagingStudy?{query}", timeout=10)
        assert response.status_code == 400, query
        assert response.json()["resourceType"] == "OperationOutcome"


def test_last_updated_filters_and_put_makes_newer() -> None:
    with FHIRServer(SAMPLE, page_size=1000) as srv:
        studies = srv.resources("ImagingStudy")
        loaded = studies[0]["meta"]["lastUpdated"]
        assert all(s["meta"]["lastUpdated"] == loaded for s in studies)
        assert requests.get(f"{srv.base_url}/ImagingStudy?_lastUpdated=gt{loaded}",
                            timeout=10).json()["total"] == 0
        assert requests.get(f"{srv.base_url}/ImagingStudy?_lastUpdated=ge{loaded}",
                            timeout=10).json()["total"] == len(studies)

        changed = dict(studies[3], status="cancelled")
        stored = srv.put(changed)
        assert stored["meta"]["lastUpdated"] > loaded and stored["meta"]["versionId"] == "2"
        added = srv.put({"resourceType": "ImagingStudy", "id": "new-study",
                         "status": "available", "subject": studies[0]["subject"]})
        assert added["meta"]["lastUpdated"] > stored["meta"]["lastUpdated"]

        newer = requests.get(f"{srv.base_url}/ImagingStudy?_lastUpdated=gt{loaded}",
                             timeout=10).json()
        assert [e["resource"]["id"] for e in newer["entry"]] == [changed["id"], "new-study"]
        assert newer["entry"][0]["resource"]["status"] == "cancelled"
        between = requests.get(
            f"{srv.base_url}/ImagingStudy?_lastUpdated=gt{loaded}"
            f"&_lastUpdated=lt{added['meta']['lastUpdated']}", timeout=10).json()
        assert [e["resource"]["id"] for e in between["entry"]] == [changed["id"]]
        by_day = requests.get(f"{srv.base_url}/ImagingStudy?_lastUpdated={loaded[:10]}",
                              timeout=10).json()
        same_day = [s for s in srv.resources("ImagingStudy")
                    if s["meta"]["lastUpdated"][:10] == loaded[:10]]
        assert by_day["total"] == len(same_day) >= len(studies)  # eq covers the whole day


def test_paging_is_stable_while_resources_change() -> None:
    with FHIRServer(SAMPLE, page_size=4) as srv:
        expected = _ndjson_ids("Patient")
        seen: list[str] = []
        for number, bundle in enumerate(_pages(f"{srv.base_url}/Patient")):
            seen += [e["resource"]["id"] for e in bundle["entry"]]
            if number == 0:
                srv.put({"resourceType": "Patient", "id": "late-arrival"})
                srv.delete("Patient", expected[-1])
        assert Counter(seen) == Counter(expected)


def test_read_by_id_and_unknowns_are_404(server: FHIRServer) -> None:
    patient_id = _ndjson_ids("Patient")[0]
    response = requests.get(f"{server.base_url}/Patient/{patient_id}", timeout=10)
    assert response.status_code == 200 and response.json()["id"] == patient_id
    for path in ("/Patient/no-such-id", "/Observation", "/NotAType?_count=1"):
        response = requests.get(f"{server.base_url}{path}", timeout=10)
        assert response.status_code == 404, path
        assert response.headers["Content-Type"].startswith(FHIR_JSON)
        assert response.json()["resourceType"] == "OperationOutcome"
    response = requests.get(f"{server.base_url}?_getpages=forged&_getpagesoffset=5", timeout=10)
    assert response.status_code == 410


def test_bearer_token_is_required_when_configured() -> None:
    with FHIRServer(SAMPLE, token="s3cret") as srv:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            response = requests.get(f"{srv.base_url}/ImagingStudy", headers=headers, timeout=10)
            assert response.status_code == 401
            assert response.json()["resourceType"] == "OperationOutcome"
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
        auth = {"Authorization": "Bearer s3cret"}
        pages = list(_pages(f"{srv.base_url}/ImagingStudy?_count=20", headers=auth))
        assert sum(len(p["entry"]) for p in pages) == len(_ndjson_ids("ImagingStudy"))
        assert all(r.headers.get("authorization") == "Bearer s3cret"
                   for r in srv.requests[-len(pages):])


def test_injected_faults_and_delays() -> None:
    with FHIRServer(SAMPLE) as srv:
        srv.fail_next(status=503, times=2, retry_after=1)
        url = f"{srv.base_url}/Patient?_count=1"
        first, second = (requests.get(url, timeout=10) for _ in range(2))
        assert first.status_code == second.status_code == 503
        assert first.headers["Retry-After"] == "1"
        assert requests.get(url, timeout=10).status_code == 200
        srv.delay_next(1.0)
        with pytest.raises(requests.Timeout):
            requests.get(url, timeout=0.2)
        assert requests.get(url, timeout=10).status_code == 200
        assert len(srv.requests_for("/Patient")) == 5


def test_serve_fhir_yields_base_url_and_accepts_a_list() -> None:
    patient = {"resourceType": "Patient", "id": "p1"}
    study = {"resourceType": "ImagingStudy", "id": "s1", "status": "available",
             "subject": {"reference": "Patient/p1"}}
    with serve_fhir([patient, study], page_size=10) as base:
        assert base.startswith("http://127.0.0.1:") and base.endswith("/fhir")
        bundle = requests.get(f"{base}/ImagingStudy?_include=ImagingStudy:subject",
                              timeout=10).json()
    assert [(e["resource"]["id"], e["search"]["mode"]) for e in bundle["entry"]] == [
        ("s1", "match"), ("p1", "include")]
    assert bundle["entry"][0]["resource"]["meta"]["lastUpdated"]
    assert "meta" not in study  # the caller's dicts are not modified
