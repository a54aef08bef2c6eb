"""Synthea populations through both FHIR paths: Bulk Data NDJSON files and a FHIR REST server
(standard search paging, ``_include``, bearer token) give identical stored records, and no
identifying value of the input reaches any table.

The 59-patient sample lives in the repository; the 1,000-patient population is generated with
Synthea from Maven Central (``scripts/synthea.py``) once per machine and cached.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.testing.fhir_server import FHIRServer, load_ndjson
from tests.integration.records import database_text, make_dataset

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "fhir" / "synthea"
CACHE = Path(os.environ.get("CATALOGUE_SYNTHEA_CACHE",
                            Path.home() / ".cache" / "catalogue" / "synthea-populations"))


@pytest.fixture(scope="session")
def synthea_1000() -> Path:
    """1,000 living patients (Synthea adds the deceased), seed 42, two years of history."""
    target = CACHE / "p1000-s42-y2"
    CACHE.mkdir(parents=True, exist_ok=True)
    with (CACHE / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one generator per machine, even with xdist
        if not (target / "Patient.ndjson").exists():
            proc = subprocess.run(
                [sys.executable, str(REPO / "scripts" / "synthea.py"), "--patients", "1000",
                 "--seed", "42", "--years-of-history", "2", "--out", str(target), "--quiet"],
                capture_output=True, text=True, timeout=1500)
            assert proc.returncode == 0, f"Synthea failed:\n{proc.stdout}\n{proc.stderr}"
    return target


@pytest.fixture
def datasets(runtime: Runtime) -> Runtime:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-s", "Synthea", "US"))
    for identifier in ("via-ndjson", "via-rest"):
        make_dataset(runtime, identifier, identifier, organisation_id="org-s")
    return runtime


def records(rt: Runtime, identifier: str) -> dict[str, list[dict[str, Any]]]:
    """The stored records of one dataset, without row ids."""
    with rt.database.transaction() as conn:
        scope = ("JOIN datasets d ON d.id = s.dataset_id WHERE d.identifier = %s")
        return {
            "subjects": conn.execute(
                "SELECT s.subject_key, s.sex, s.birth_year, s.content_hash FROM subjects s "
                f"{scope} ORDER BY 1", (identifier,)).fetchall(),
            "studies": conn.execute(
                "SELECT s.subject_key, st.study_key, st.modalities, st.body_parts, "
                "st.manufacturer, st.series_count, st.instance_count, st.study_month, "
                "st.age_at_study, st.content_hash FROM imaging_studies st "
                f"JOIN subjects s ON s.id = st.subject_id {scope} ORDER BY 2",
                (identifier,)).fetchall(),
            "conditions": conn.execute(
                "SELECT s.subject_key, c.condition_key, c.system, c.code, c.concept, "
                f"c.content_hash FROM conditions c JOIN subjects s ON s.id = c.subject_id "
                f"{scope} ORDER BY 2, 3, 4", (identifier,)).fetchall(),
        }


def identifying(folder: Path) -> set[str]:
    """Names, identifiers, addresses, telecom, exact birth dates (not on the 1st: coarsened
    dates are the 1st of a month) and DICOM UIDs of the input."""
    found: set[str] = set()
    for r in load_ndjson(folder / "Patient.ndjson"):
        found.add(r["id"])
        for name in r.get("name", []):
            found.update(name.get("given", []))
            if name.get("family"):
                found.add(name["family"])
        found.update(i["value"] for i in r.get("identifier", []) if i.get("value"))
        for address in r.get("address", []):
            found.update(address.get("line", []))
        found.update(t["value"] for t in r.get("telecom", []) if t.get("value"))
        if r.get("birthDate") and not r["birthDate"].endswith("-01"):
            found.add(r["birthDate"])
    for r in load_ndjson(folder / "ImagingStudy.ndjson"):
        found.update(i["value"].removeprefix("urn:oid:") for i in r.get("identifier", []))
        for series in r.get("series", []):
            found.add(series["uid"])
            found.update(i["uid"] for i in series.get("instance", []))
    return {v for v in found if len(v) >= 4}




def ingest_both(rt: Runtime, folder: Path, page_size: int) -> Iterator[Any]:
    via_files = rt.harvest.run_url(SYSTEM, "fhir", str(folder), "org-s", dataset="via-ndjson")
    with FHIRServer(folder, token="synthea-token", page_size=page_size) as server:
        via_rest = rt.harvest.run_url(SYSTEM, "fhir", server.base_url, "org-s",
                                      dataset="via-rest", allow_private=True,
                                      bearer_token="synthea-token")
        pages = sum(1 for r in server.requests if "metadata" not in r.path)
    yield via_files
    yield via_rest
    yield pages


def check_identical(rt: Runtime, folder: Path, page_size: int) -> tuple[Any, Any]:
    via_files, via_rest, pages = ingest_both(rt, folder, page_size)
    assert via_files.status == "completed" and via_files.counts["invalid"] == 0, \
        via_files.errors[:5]
    assert via_rest.status == "completed" and via_rest.counts["invalid"] == 0, \
        via_rest.errors[:5]
    studies = sum(1 for _ in load_ndjson(folder / "ImagingStudy.ndjson"))
    assert pages > studies // page_size  # paged through Bundle next links
    from_files, from_rest = records(rt, "via-ndjson"), records(rt, "via-rest")
    assert len(from_files["studies"]) == studies
    assert from_files == from_rest
    text = database_text(rt)
    leaked = sorted(v for v in identifying(folder) if v in text)
    assert leaked == [], f"{len(leaked)} identifying values stored, e.g. {leaked[:3]}"
    return via_files, via_rest


def test_sample_ndjson_and_rest_store_identical_records(datasets: Runtime) -> None:
    check_identical(datasets, SAMPLE, page_size=20)
    # the sample has chest CTs of a lung-cancer patient, mapped to the vocabularies
    with datasets.database.transaction() as conn:
        chest_ct = conn.execute(
            "SELECT count(*) AS n FROM imaging_studies WHERE 'CT' = ANY(modalities) "
            "AND 'CHEST' = ANY(body_parts)").fetchone()
        cancers = conn.execute(
            "SELECT count(DISTINCT subject_id) AS n FROM conditions WHERE concept IS NOT NULL"
        ).fetchone()
    assert chest_ct is not None and chest_ct["n"] >= 2 * 6  # in both datasets
    assert cancers is not None and cancers["n"] >= 2
    # a REST source without its token is refused, naming the problem
    with FHIRServer(SAMPLE, token="synthea-token") as server:
        refused = datasets.harvest.run_url(SYSTEM, "fhir", server.base_url, "org-s",
                                           dataset="via-rest", allow_private=True)
    assert refused.status == "failed" and "401" in (refused.error or ""), refused.error
    # an incomplete run deletes nothing
    assert records(datasets, "via-rest") == records(datasets, "via-ndjson")


def test_rest_incremental_run_reads_only_changes(datasets: Runtime) -> None:
    with FHIRServer(SAMPLE, page_size=25) as server:
        source = datasets.harvest.register(SYSTEM, _source(server.base_url))
        first = datasets.harvest.run_source(SYSTEM, source.id, allowed_origins=frozenset(
            {server.base_url.split("/")[2]}))
        assert first.status == "completed" and first.counts["created"] > 0
        study = server.resources("ImagingStudy")[0]
        server.put({**study, "numberOfInstances": 4242})
        before = len(server.requests)
        second = datasets.harvest.run_source(SYSTEM, source.id, allowed_origins=frozenset(
            {server.base_url.split("/")[2]}))
        searches = [r for r in server.requests[before:] if "_lastUpdated" in r.path]
    assert second.status == "completed", second.errors
    assert searches, "the incremental run asked for changes only"
    assert second.counts["updated"] == 1 and second.counts["deleted"] == 0
    assert second.counts["seen"] < first.counts["seen"]
    with datasets.database.transaction() as conn:
        row = conn.execute("SELECT count(*) AS n FROM imaging_studies WHERE instance_count = "
                           "4242").fetchone()
    assert row is not None and row["n"] == 1


def _source(url: str) -> Any:
    from catalogue.store.harvest import HarvestSource

    return HarvestSource(id="", organisation_id="org-s", kind="fhir", url=url,
                         dataset_id="via-rest", config={"incremental": True})


def test_synthea_1000_patients_ndjson_and_rest_identical(datasets: Runtime,
                                                         synthea_1000: Path) -> None:
    patients = sum(1 for _ in load_ndjson(synthea_1000 / "Patient.ndjson"))
    assert patients >= 1000
    via_files, via_rest = check_identical(datasets, synthea_1000, page_size=200)
    # REST pages include a patient once per page that refers to it: read more often, same data
    assert via_rest.counts["seen"] >= via_files.counts["seen"]
    assert via_rest.counts["created"] == via_files.counts["created"]
