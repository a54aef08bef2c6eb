"""FHIR ingest end to end: NDJSON files, Bundles and a FHIR REST server into PostgreSQL,
pseudonymised; re-runs write nothing; bad resources are reported one by one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from catalogue.cli import main
from catalogue.model.dataset import Dataset
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.testing.fhir_population import Population, population, write_ndjson
from tests.integration.records import database_text, make_dataset

SHARED = Path(__file__).resolve().parents[1] / "data" / "fhir"


@pytest.fixture
def target(runtime: Runtime) -> str:
    """An organisation with one dataset; returns the dataset id."""
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    return make_dataset(runtime, "lung-ct", "Lung CT")


def harvest(rt: Runtime, url: str, **kwargs: Any) -> Any:
    return rt.harvest.run_url(SYSTEM, "fhir", url, "org-a", dataset="lung-ct", **kwargs)


def stored(rt: Runtime) -> dict[str, Any]:
    """Everything the record tables hold, comparable across runs and inputs."""
    with rt.database.transaction() as conn:
        subjects = conn.execute(
            "SELECT subject_key, sex, birth_year, content_hash FROM subjects ORDER BY 1"
        ).fetchall()
        studies = conn.execute(
            "SELECT s.subject_key, st.study_key, st.modalities, st.body_parts, st.manufacturer, "
            "st.series_count, st.instance_count, st.study_month, st.age_at_study, "
            "st.content_hash FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id "
            "ORDER BY 2").fetchall()
        conditions = conn.execute(
            "SELECT s.subject_key, c.condition_key, c.system, c.code, c.concept "
            "FROM conditions c JOIN subjects s ON s.id = c.subject_id ORDER BY 2, 3, 4"
        ).fetchall()
    return {"subjects": subjects, "studies": studies, "conditions": conditions}




def test_ndjson_ingest_pseudonymises_and_rerun_writes_nothing(
        runtime: Runtime, target: str, tmp_path: Path) -> None:
    pop = population(30, seed=7)
    write_ndjson(pop, tmp_path / "bulk")
    report = harvest(runtime, str(tmp_path / "bulk"))
    assert report.status == "completed", report.errors
    assert report.counts["invalid"] == 0
    assert report.counts["seen"] == len(pop.resources())
    first = stored(runtime)
    assert len(first["subjects"]) == 30
    assert len(first["studies"]) == len(pop.studies)
    # one row per coding: SNOMED and ICD-10 of every condition
    assert len(first["conditions"]) == 2 * len(pop.conditions)
    by_key = {s["study_key"]: s for s in first["studies"]}
    assert {tuple(s["modalities"]) for s in first["studies"]} == {("CT",), ("MG",), ("MR",)}
    assert {tuple(s["body_parts"]) for s in first["studies"]} <= {
        ("CHEST",), ("BREAST",), ("PROSTATE",), ("snomed:41216001",)}
    assert all(s["study_month"].day == 1 for s in by_key.values())
    assert all(40 <= s["age_at_study"] <= 80 for s in by_key.values())
    assert {c["concept"] for c in first["conditions"] if c["system"] == "snomed"} >= {
        "snomed:254637007", "snomed:254837009"}
    # ages computed from the exact dates: the first patient's first study
    patient, study = pop.patients[0], pop.studies[0]
    born, started = patient["birthDate"], study["started"][:10]
    expected = int(started[:4]) - int(born[:4]) - ((started[5:], ) < (born[5:], ))
    assert any(s["age_at_study"] == expected for s in first["studies"])

    # nothing identifying anywhere in the database
    text = database_text(runtime)
    leaked = sorted(v for v in pop.identifying_values() if v in text)
    assert leaked == []

    # a re-run reads everything and writes nothing
    with runtime.database.transaction() as conn:
        before = conn.execute("SELECT max(updated_at) AS t, (SELECT count(*) FROM outbox) AS n "
                              "FROM subjects").fetchone()
    again = harvest(runtime, str(tmp_path / "bulk"))
    assert again.status == "completed"
    assert again.counts["created"] == again.counts["updated"] == 0
    assert again.counts["unchanged"] == len(pop.resources())
    assert stored(runtime) == first
    with runtime.database.transaction() as conn:
        after = conn.execute("SELECT max(updated_at) AS t, (SELECT count(*) FROM outbox) AS n "
                             "FROM subjects").fetchone()
    assert before == after  # no row touched, nothing queued for re-indexing


@pytest.mark.parametrize("release", ["R4", "R5"])
def test_realistic_resources_land_whole_and_nothing_identifying_with_them(
        runtime: Runtime, target: str, tmp_path: Path, release: str) -> None:
    """The benchmark's realistic population (every instance listed, Synthea's extensions,
    comorbidities): every resource valid and stored, counts taken from the series."""
    pop = population(24, seed=13, release=release, realistic=True)
    write_ndjson(pop, tmp_path / "bulk")
    report = harvest(runtime, str(tmp_path / "bulk"), config={"fhir_version": "4.0.1"}
                     if release == "R4" else {"fhir_version": "5.0.0"})
    assert report.status == "completed", report.errors
    assert report.counts["invalid"] == 0 and report.errors == []
    assert report.counts["created"] == len(pop.resources())
    now = stored(runtime)
    assert len(now["studies"]) == len(pop.studies)
    assert sorted((s["series_count"], s["instance_count"]) for s in now["studies"]) == sorted(
        (len(s["series"]), sum(len(se["instance"]) for se in s["series"])) for s in pop.studies)
    assert max(s["instance_count"] for s in now["studies"]) >= 40  # CTs list their instances
    assert len(now["conditions"]) == 2 * len(pop.conditions)  # SNOMED and ICD-10 each
    assert {c["code"] for c in now["conditions"]} >= {"13645005", "I10"}
    assert len(pop.conditions) > len(pop.patients)  # comorbidities beside the cancers
    text = database_text(runtime)
    assert sorted(v for v in pop.identifying_values() if v in text) == []
    assert "Maidenname13x0" in pop.identifying_values()


def test_changes_and_deletions_propagate(runtime: Runtime, target: str, tmp_path: Path) -> None:
    pop = population(20, seed=3)
    write_ndjson(pop, tmp_path / "bulk")
    assert harvest(runtime, str(tmp_path / "bulk")).status == "completed"
    # the source drops two patients' studies and conditions, and changes one study
    dropped = {pop.patients[0]["id"], pop.patients[1]["id"]}
    changed = Population(
        patients=pop.patients,
        studies=[s for s in pop.studies if s["subject"]["reference"][8:] not in dropped],
        conditions=[c for c in pop.conditions if c["subject"]["reference"][8:] not in dropped])
    changed.studies[0] = {**changed.studies[0], "numberOfInstances": 999}
    write_ndjson(changed, tmp_path / "bulk")
    report = harvest(runtime, str(tmp_path / "bulk"))
    assert report.status == "completed", report.errors
    assert report.counts["updated"] == 1
    # every resource seen is counted once: the changed study's patient is not counted again
    assert report.counts["seen"] == len(changed.resources())
    assert report.counts["unchanged"] == report.counts["seen"] - 1
    assert report.counts["created"] == 0
    now = stored(runtime)
    assert len(now["subjects"]) == 18
    assert len(now["studies"]) == len(changed.studies)
    assert 999 in {s["instance_count"] for s in now["studies"]}
    assert report.counts["deleted"] == (len(pop.studies) - len(changed.studies)) + (
        len(pop.conditions) - len(changed.conditions)) + 2


def test_bad_lines_are_reported_and_good_records_land(
        runtime: Runtime, target: str, tmp_path: Path) -> None:
    pop = population(12, seed=5)
    folder = tmp_path / "bulk"
    write_ndjson(pop, folder)
    studies = (folder / "ImagingStudy.ndjson").read_text().splitlines()
    studies.insert(2, "{not json")
    studies.insert(4, json.dumps({**pop.studies[0], "id": "bad-count",
                                  "numberOfSeries": "many"}))
    dstu2 = json.loads((SHARED / "spec-examples" / "imagingstudy-example.dstu2.json").read_text())
    studies.append(json.dumps(dstu2))
    studies.append(json.dumps(["not", "a", "resource"]))
    (folder / "ImagingStudy.ndjson").write_text("\n".join(studies) + "\n")
    report = harvest(runtime, str(folder))
    assert report.status == "completed"
    assert report.counts["invalid"] == 4
    errors = {(e["location"], e["record"]): e["message"] for e in report.errors
              if e["severity"] == "error"}
    assert "not valid JSON" in errors[("ImagingStudy.ndjson:3", None)]
    assert "numberOfSeries" in errors[("ImagingStudy.ndjson:5", "ImagingStudy/bad-count")]
    assert any("R4, R4B and R5" in m for m in errors.values())
    assert any(loc.endswith(f":{len(studies)}") for loc, _ in errors)
    # the good ones all landed
    assert len(stored(runtime)["studies"]) == len(pop.studies)
    # and no message carries a value of the bad record
    assert "many" not in json.dumps(report.errors)


def test_r5_resources_and_bundles(runtime: Runtime, target: str, tmp_path: Path) -> None:
    r4, r5 = population(10, seed=11, release="R4"), population(10, seed=11, release="R5")
    write_ndjson(r5, tmp_path / "r5")
    assert harvest(runtime, str(tmp_path / "r5")).counts["invalid"] == 0
    from_r5 = stored(runtime)
    assert len(from_r5["studies"]) == len(r5.studies)
    # the same population as an R4 collection Bundle in another dataset gives the same facts
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r}
                        for r in r4.studies + r4.conditions + r4.patients]}
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    runtime.datasets.save(SYSTEM, Dataset(identifier="other", organisation_id="org-a",
                                          title={"en": "Other"}))
    report = runtime.harvest.run_url(SYSTEM, "fhir", str(tmp_path / "bundle.json"), "org-a",
                                     dataset="other")
    assert report.status == "completed" and report.counts["invalid"] == 0, report.errors
    with runtime.database.transaction() as conn:
        rows = conn.execute(
            "SELECT d.identifier, st.modalities, st.body_parts, st.series_count, "
            "st.instance_count, st.study_month, st.age_at_study FROM imaging_studies st "
            "JOIN subjects s ON s.id = st.subject_id JOIN datasets d ON d.id = s.dataset_id "
            "ORDER BY 2, 3, 4, 5, 6, 7").fetchall()
    by_dataset: dict[str, list[Any]] = {}
    for row in rows:
        by_dataset.setdefault(row.pop("identifier"), []).append(row)
    assert by_dataset["lung-ct"] == by_dataset["other"]


def test_dataset_aggregates_are_protected(runtime: Runtime, target: str, tmp_path: Path) -> None:
    pop = population(36, seed=9)
    write_ndjson(pop, tmp_path / "bulk")
    assert harvest(runtime, str(tmp_path / "bulk")).status == "completed"
    ds = runtime.datasets.get(SYSTEM, target)
    aggregates = ds.aggregates
    assert aggregates["number_of_individuals"] == 36
    assert aggregates["number_of_studies"] == len(pop.studies)
    # 12 patients per cancer type: each modality reaches the floor of 10
    assert sorted(aggregates["modalities"]) == ["CT", "MG", "MR"]
    detail = aggregates["records"]
    assert detail["subjects"] == {"value": 36}
    for band, cell in detail["age_bands"].items():
        assert cell.get("value", 10) >= 10, band
    # below the floor nothing is exact, and rare values are not even named
    assert all(c.get("value", 10) >= 10 for c in detail["manufacturers"].values())
    assert aggregates["min_age"] is None or aggregates["min_age"] % 5 == 0
    # the dataset is found by its derived modality
    assert runtime.indexer is not None
    runtime.indexer.drain()
    found = runtime.datasets.search(SYSTEM, filters={"modalities": ["MG"]})
    assert [d.id for d in found.items] == [target]
    assert runtime.datasets.search(SYSTEM, filters={"modalities": ["US"]}).items == []


def test_cli_contract(runtime: Runtime, target: str, tmp_path: Path, config: Any) -> None:
    pop = population(5, seed=2)
    write_ndjson(pop, tmp_path / "bulk")
    env = {"CATALOGUE_DATABASE_URL": config.database_url, "CATALOGUE_DATA_DIR": config.data_dir,
           "CATALOGUE_SECRET_KEY": config.secret_key, "CATALOGUE_ENV": "test"}
    runner = CliRunner()
    result = runner.invoke(main, ["harvest", "fhir", str(tmp_path / "bulk"), "--organisation",
                                  "org-a", "--dataset", "lung-ct", "--json"], env=env)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["status"] == "completed" and report["counts"]["created"] > 0
    missing = runner.invoke(main, ["harvest", "fhir", str(tmp_path / "nowhere"),
                                   "--organisation", "org-a", "--dataset", "lung-ct"], env=env)
    assert missing.exit_code == 1
    assert "No such file" in missing.output
    unknown = runner.invoke(main, ["harvest", "fhir", str(tmp_path / "bulk"), "--organisation",
                                   "org-a", "--dataset", "nope"], env=env)
    assert unknown.exit_code != 0
    assert "dataset 'nope' not found" in unknown.output
