"""OMOP ingest end to end: the Eunomia Synthea27Nj CDM with generated medical-imaging rows, in
its own database of the test PostgreSQL server, harvested into the catalogue. Every expectation
is computed here with SQL against the OMOP schema, independently of the harvester."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from catalogue.cli import main
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.ontology import get_vocabulary
from catalogue.runtime import Runtime
from catalogue.testing import omop
from tests.conftest import TEST_SECRET
from tests.integration.records import database_text, make_dataset

_counter = iter(range(1_000_000))
# the OMOP vocabularies the catalogue keeps condition codes of, and their system names
SYSTEMS = {"SNOMED": "snomed", "ICD10": "icd10", "ICD10CM": "icd10", "ICDO3": "icdo3"}


@pytest.fixture(scope="module")
def omop_template(pg_url: str) -> Iterator[str]:
    """A database with the Eunomia CDM and generated imaging rows, built once per module."""
    name = f"omop_template_{os.getpid()}"
    url = omop.create_database(pg_url, name)
    omop.build_eunomia(url, "cdm", seed=0)
    yield name
    omop.drop_database(pg_url, name)


@pytest.fixture
def omop_url(pg_url: str, omop_template: str) -> Iterator[str]:
    """A fresh copy of the OMOP source database for one test."""
    name = f"omop_{os.getpid()}_{next(_counter)}"
    url = omop.create_database(pg_url, name, template=omop_template)
    yield url
    omop.drop_database(pg_url, name)


@pytest.fixture
def target(runtime: Runtime) -> str:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    return make_dataset(runtime, "omop-ds", "OMOP imaging")


def harvest(rt: Runtime, url: str, **config: Any) -> Any:
    return rt.harvest.run_url(SYSTEM, "omop", url, "org-a", dataset="omop-ds",
                              allow_private=True, config={"schema": "cdm", **config})


def sql(url: str, query: str, params: Any = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def execute(url: str, query: str, params: Any = None) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(query, params)


# -- ground truth, from the OMOP schema ------------------------------------------------------
_KNOWN = ("({col} IS NULL OR {col} = 0 OR EXISTS (SELECT 1 FROM cdm.concept k "
          "WHERE k.concept_id = {col}))")
_GOOD_SERIES = ("SELECT io.* FROM cdm.image_occurrence io JOIN cdm.person p USING (person_id) "
                "WHERE " + _KNOWN.format(col="io.modality_concept_id") + " AND "
                + _KNOWN.format(col="io.anatomic_site_concept_id"))
_GOOD_CONDITIONS = (
    "SELECT co.* FROM cdm.condition_occurrence co JOIN cdm.person p USING (person_id) WHERE "
    + _KNOWN.format(col="co.condition_concept_id") + " AND "
    + _KNOWN.format(col="co.condition_source_concept_id"))
# one row per (condition row, system, code); ICD-O-3 combination codes give both parts
_CONDITION_CODES = (
    "SELECT DISTINCT co.condition_occurrence_id, co.person_id, c.vocabulary_id, "
    "unnest(CASE WHEN c.vocabulary_id = 'ICDO3' THEN string_to_array(c.concept_code, '-') "
    "ELSE ARRAY[c.concept_code] END) AS code FROM (" + _GOOD_CONDITIONS + ") co "
    "JOIN cdm.concept c ON c.concept_id IN (co.condition_concept_id, "
    "co.condition_source_concept_id) WHERE c.vocabulary_id = ANY(%(vocabularies)s)")


def truth(url: str) -> dict[str, Any]:
    """What the catalogue must hold, computed from the OMOP tables."""
    params = {"vocabularies": list(SYSTEMS)}
    codes = sql(url, _CONDITION_CODES, params)
    studies = sql(url, "SELECT image_study_uid, min(person_id) FROM (" + _GOOD_SERIES + ") s "
                  "GROUP BY 1")
    persons = {p for _uid, p in studies} | {p for _id, p, _v, _c in codes}
    modalities = sql(url, "SELECT c.concept_code, count(DISTINCT s.image_study_uid) FROM ("
                     + _GOOD_SERIES + ") s JOIN cdm.concept c ON c.concept_id = "
                     "s.modality_concept_id GROUP BY 1")
    sites = sql(url, "SELECT c.vocabulary_id, c.concept_code, s.image_study_uid FROM ("
                + _GOOD_SERIES + ") s JOIN cdm.concept c ON c.concept_id = "
                "s.anatomic_site_concept_id UNION SELECT c.vocabulary_id, c.concept_code, "
                "s.image_study_uid FROM (" + _GOOD_SERIES + ") s JOIN cdm.image_feature f "
                "ON f.image_occurrence_id = s.image_occurrence_id JOIN cdm.concept c "
                "ON c.concept_id = f.anatomic_site_concept_id")
    body_parts: Counter[str] = Counter()
    vocabulary = get_vocabulary("body_parts")
    for vocabulary_id, code, _uid in sites:
        found = vocabulary.resolve(f"snomed:{code}")
        assert vocabulary_id == "SNOMED"
        body_parts[found.id if found else f"snomed:{code}"] += 1
    ages = sql(url, "SELECT date_trunc('month', min(s.image_occurrence_date))::date, "
               "extract(year FROM age(min(s.image_occurrence_date), make_date(p.year_of_birth, "
               "p.month_of_birth, p.day_of_birth)))::int, count(*) FROM (" + _GOOD_SERIES
               + ") s JOIN cdm.person p USING (person_id) GROUP BY s.image_study_uid, "
               "p.person_id")
    demographics = sql(url, "SELECT gender_concept_id, year_of_birth FROM cdm.person "
                       "WHERE person_id = ANY(%s)", (sorted(persons),))
    return {
        "subjects": len(persons),
        "studies": len(studies),
        "series": sum(n for _m, _a, n in ages),
        "conditions": len({row_id for row_id, _p, _v, _c in codes}),
        "codes": Counter((SYSTEMS[v], c) for _id, _p, v, c in codes),
        "modalities": dict(modalities),
        "body_parts": dict(body_parts),
        "months_ages": Counter((m, a) for m, a, _n in ages),
        "sexes": Counter({8507: "male", 8532: "female"}[g] for g, _y in demographics),
        "birth_years": Counter(y for _g, y in demographics),
    }


def stored(rt: Runtime) -> dict[str, Any]:
    """The same figures, from the catalogue's record tables."""
    with rt.database.transaction() as conn:
        def one(query: str) -> Any:
            row = conn.execute(query).fetchone()
            assert row is not None
            return next(iter(row.values()))

        def pairs(query: str) -> list[Any]:
            return [tuple(r.values()) for r in conn.execute(query)]

        return {
            "subjects": one("SELECT count(*) FROM subjects"),
            "studies": one("SELECT count(*) FROM imaging_studies"),
            "series": one("SELECT sum(series_count) FROM imaging_studies"),
            "conditions": one("SELECT count(DISTINCT condition_key) FROM conditions"),
            "codes": Counter(pairs("SELECT system, code FROM conditions")),
            "modalities": dict(pairs("SELECT m, count(*) FROM imaging_studies, "
                                     "unnest(modalities) m GROUP BY m")),
            "body_parts": dict(pairs("SELECT b, count(*) FROM imaging_studies, "
                                     "unnest(body_parts) b GROUP BY b")),
            "months_ages": Counter(pairs("SELECT study_month, age_at_study::int "
                                         "FROM imaging_studies")),
            "sexes": Counter(r[0] for r in pairs("SELECT sex FROM subjects")),
            "birth_years": Counter(r[0] for r in pairs("SELECT birth_year FROM subjects")),
        }


def snapshot(rt: Runtime) -> dict[str, Any]:
    """Every stored record with its keys, hashes and update times (to show nothing moved)."""
    with rt.database.transaction() as conn:
        return {
            "subjects": conn.execute("SELECT * FROM subjects ORDER BY id").fetchall(),
            "studies": conn.execute("SELECT * FROM imaging_studies ORDER BY id").fetchall(),
            "conditions": conn.execute("SELECT * FROM conditions ORDER BY id").fetchall(),
            "outbox": conn.execute("SELECT count(*) AS n FROM outbox").fetchone(),
        }




def errors_of(report: Any, severity: str = "error") -> dict[str, dict[str, Any]]:
    return {e["record"]: e for e in report.errors if e["severity"] == severity}


# -- tests ----------------------------------------------------------------------------------
def test_eunomia_with_imaging_matches_sql_ground_truth_and_rerun_writes_nothing(
        runtime: Runtime, target: str, omop_url: str) -> None:
    expected = truth(omop_url)
    assert expected["studies"] > 50 and expected["conditions"] > 400  # a real sample
    assert {"CT", "MR", "DX", "US", "MG", "PT"} <= set(expected["modalities"])
    assert {"icd10", "icdo3", "snomed"} <= {s for s, _c in expected["codes"]}

    report = harvest(runtime, omop_url)
    assert report.status == "completed", report.error
    assert errors_of(report) == {}
    assert report.counts["invalid"] == 0
    assert stored(runtime) == expected
    # records are subjects + studies + conditions; condition rows without a kept code skipped
    condition_rows = sql(omop_url, "SELECT count(*) FROM cdm.condition_occurrence")[0][0]
    assert report.counts["seen"] == (expected["subjects"] + expected["studies"]
                                     + condition_rows)
    assert report.counts["created"] == (expected["subjects"] + expected["studies"]
                                        + expected["conditions"])
    assert report.counts["skipped"] == condition_rows - expected["conditions"]

    # the dataset's aggregates follow
    aggregates = runtime.datasets.get(SYSTEM, target).aggregates
    assert aggregates["records"]["subjects"] == {"value": expected["subjects"]}

    # nothing identifying from the source anywhere in the catalogue's database
    text = database_text(runtime)
    identifying = omop.identifying_values(omop_url)
    assert len(identifying["uid"]) == expected["studies"] + expected["series"]
    for kind, values in identifying.items():
        assert values, kind
        assert sorted(v for v in values if v in text) == [], kind

    # a re-run reads everything and writes nothing
    before = snapshot(runtime)
    again = harvest(runtime, omop_url)
    assert again.status == "completed", again.error
    assert again.counts["created"] == again.counts["updated"] == again.counts["deleted"] == 0
    assert again.counts["unchanged"] == (again.counts["seen"] - again.counts["skipped"])
    assert snapshot(runtime) == before  # no row touched, no update time moved, nothing queued


def test_deleted_rows_are_deleted_from_the_store(
        runtime: Runtime, target: str, omop_url: str) -> None:
    assert harvest(runtime, omop_url).status == "completed"
    # one study goes, one series of another study goes, two condition rows go, and every fact
    # of one person goes
    studies = sql(omop_url, "SELECT image_study_uid, count(*) FROM cdm.image_occurrence "
                  "GROUP BY 1 ORDER BY 1")
    gone_study = studies[0][0]
    thinner = next(uid for uid, n in studies if n > 2 and uid != gone_study)
    person = sql(omop_url, "SELECT person_id FROM cdm.image_occurrence GROUP BY 1 "
                 "ORDER BY count(*) LIMIT 1")[0][0]
    execute(omop_url, "DELETE FROM cdm.image_occurrence WHERE image_study_uid = %s",
            (gone_study,))
    execute(omop_url, "DELETE FROM cdm.image_occurrence WHERE image_occurrence_id = (SELECT "
            "max(image_occurrence_id) FROM cdm.image_occurrence WHERE image_study_uid = %s)",
            (thinner,))
    execute(omop_url, "DELETE FROM cdm.condition_occurrence WHERE condition_occurrence_id IN "
            "(SELECT condition_occurrence_id FROM cdm.condition_occurrence ORDER BY 1 LIMIT 2)")
    for table in ("image_occurrence", "condition_occurrence", "image_feature"):
        execute(omop_url, f"DELETE FROM cdm.{table} WHERE person_id = %s", (person,))
    expected = truth(omop_url)

    report = harvest(runtime, omop_url)
    assert report.status == "completed", report.error
    assert stored(runtime) == expected
    assert report.counts["deleted"] > 0
    assert report.counts["updated"] >= 1  # the study that lost a series


def test_unknown_concepts_are_row_errors_and_the_rest_lands(
        runtime: Runtime, target: str, omop_url: str) -> None:
    top_condition = sql(omop_url, "SELECT max(condition_occurrence_id) FROM "
                        "cdm.condition_occurrence")[0][0]
    top_image = sql(omop_url, "SELECT max(image_occurrence_id) FROM cdm.image_occurrence")[0][0]
    a_series = sql(omop_url, "SELECT person_id, procedure_occurrence_id, image_study_uid "
                   "FROM cdm.image_occurrence ORDER BY image_occurrence_id LIMIT 1")[0]
    # a condition whose concept the vocabulary lacks, one of a person the CDM lacks
    execute(omop_url, "INSERT INTO cdm.condition_occurrence (condition_occurrence_id, "
            "person_id, condition_concept_id, condition_start_date, condition_type_concept_id, "
            "condition_source_concept_id) VALUES (%s, 1, 999999991, '2020-01-01', 32817, 0), "
            "(%s, 999999, 4115276, '2020-01-01', 32817, 0)",
            (top_condition + 1, top_condition + 2))
    # a study of one series with an unknown modality; an extra series with an unknown
    # anatomic site in an existing study
    execute(omop_url, "INSERT INTO cdm.image_occurrence (image_occurrence_id, person_id, "
            "procedure_occurrence_id, anatomic_site_concept_id, image_occurrence_date, "
            "image_study_uid, image_series_uid, modality_concept_id) VALUES "
            "(%s, %s, %s, NULL, '2021-03-04', '1.2.3.999', '1.2.3.999.1', 999999992), "
            "(%s, %s, %s, 999999993, '2021-03-04', %s, '1.2.3.999.2', 2128009190)",
            (top_image + 1, a_series[0], a_series[1], top_image + 2, a_series[0], a_series[1],
             a_series[2]))
    expected = truth(omop_url)

    report = harvest(runtime, omop_url)
    assert report.status == "completed", report.error
    errors = errors_of(report)
    assert set(errors) == {f"condition_occurrence:{top_condition + 1}",
                           f"condition_occurrence:{top_condition + 2}",
                           f"image_occurrence:{top_image + 1}",
                           f"image_occurrence:{top_image + 2}"}
    unknown = errors[f"condition_occurrence:{top_condition + 1}"]
    assert unknown["location"] == "condition_occurrence"
    assert unknown["property"] == "condition_concept_id"
    assert "999999991 is not in the concept table" in unknown["message"]
    assert errors[f"image_occurrence:{top_image + 1}"]["property"] == "modality_concept_id"
    assert errors[f"image_occurrence:{top_image + 2}"]["property"] == \
        "anatomic_site_concept_id"
    assert "person table" in errors[f"condition_occurrence:{top_condition + 2}"]["message"]
    assert report.counts["invalid"] == 4
    assert stored(runtime) == expected  # everything else landed
    assert "1.2.3.999" not in database_text(runtime)


def test_incremental_runs_read_new_rows_only_and_delete_nothing(
        runtime: Runtime, target: str, omop_url: str) -> None:
    first = harvest(runtime, omop_url, incremental=True)
    assert first.status == "completed"
    with runtime.database.transaction() as conn:
        state = conn.execute("SELECT state FROM harvest_sources WHERE kind = 'omop'"
                             ).fetchone()
    assert state is not None
    cursors = state["state"]["omop"]["cursors"]
    assert cursors["image_occurrence"] == sql(
        omop_url, "SELECT max(image_occurrence_id) FROM cdm.image_occurrence")[0][0]

    # a new study, a new series of an existing study, a new condition; an old condition goes
    old = sql(omop_url, "SELECT person_id, procedure_occurrence_id, image_study_uid "
              "FROM cdm.image_occurrence ORDER BY image_occurrence_id LIMIT 1")[0]
    top = cursors["image_occurrence"]
    execute(omop_url, "INSERT INTO cdm.image_occurrence (image_occurrence_id, person_id, "
            "procedure_occurrence_id, image_occurrence_date, image_study_uid, "
            "image_series_uid, modality_concept_id) VALUES "
            "(%s, 2, 1, '2022-05-06', '1.2.826.9', '1.2.826.9.1', 2128009230), "
            "(%s, %s, %s, '2022-05-06', %s, '1.2.826.8.1', 2128009190)",
            (top + 1, top + 2, old[0], old[1], old[2]))
    execute(omop_url, "INSERT INTO cdm.condition_occurrence (condition_occurrence_id, "
            "person_id, condition_concept_id, condition_start_date, condition_type_concept_id, "
            "condition_source_concept_id) VALUES (%s, 3, 4112853, '2022-01-01', 32817, 0)",
            (cursors["condition_occurrence"] + 1,))
    execute(omop_url, "DELETE FROM cdm.condition_occurrence WHERE condition_occurrence_id = "
            "(SELECT min(condition_occurrence_id) FROM cdm.condition_occurrence)")
    before = stored(runtime)

    second = harvest(runtime, omop_url, incremental=True)
    assert second.status == "completed", second.error
    # only the new rows were read: two studies, one condition, and their persons
    assert second.counts["seen"] <= 6
    assert second.counts["deleted"] == 0
    now = stored(runtime)
    assert now["studies"] == before["studies"] + 1
    assert now["conditions"] == before["conditions"] + 1  # the deleted one is still there
    assert now["series"] == before["series"] + 2

    # a full run applies the deletion and agrees with the source
    third = harvest(runtime, omop_url, incremental=False)
    assert third.status == "completed"
    assert third.counts["deleted"] == 1
    assert stored(runtime) == truth(omop_url)


def test_procedures_are_studies_in_a_cdm_without_the_imaging_extension(
        runtime: Runtime, target: str, pg_url: str) -> None:
    name = f"omop_plain_{os.getpid()}_{next(_counter)}"
    url = omop.create_database(pg_url, name)
    try:
        omop.build_eunomia(url, "cdm", imaging=False)
        report = harvest(runtime, url)
        assert report.status == "completed", report.error
        # the imaging procedures of Eunomia, by SNOMED code, and what they are
        imaging = {"399208008": "DX", "40701008": "US", "169230002": "US", "709640007": "US",
                   "1571000087109": "US", "312681000": "BMD", "71651007": "MG",
                   "24623002": "MG", "241055006": "MG", "698354004": "MR", "241149003": "RF"}
        rows = sql(url, "SELECT c.concept_code, count(*) FROM cdm.procedure_occurrence po "
                   "JOIN cdm.concept c ON c.concept_id = po.procedure_concept_id "
                   "WHERE c.concept_code = ANY(%s) GROUP BY 1", (list(imaging),))
        expected: Counter[str] = Counter()
        for code, n in rows:
            expected[imaging[code]] += n
        # (a thrombectomy under fluoroscopic guidance is not an imaging study)
        now = stored(runtime)
        assert now["modalities"] == dict(expected)
        assert now["studies"] == sum(expected.values())
        assert now["body_parts"].get("CHEST") == dict(rows).get("399208008")
        assert now["body_parts"].get("HEART") == dict(rows).get("40701008")
    finally:
        omop.drop_database(pg_url, name)


def test_password_comes_from_the_environment_and_is_never_stored(
        runtime: Runtime, target: str, omop_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMOP_TEST_PASSWORD", "pw-0f9e8d7c6b5a")
    report = harvest(runtime, omop_url, password_env="OMOP_TEST_PASSWORD")
    assert report.status == "completed", report.error
    missing = harvest(runtime, omop_url, password_env="OMOP_TEST_NOT_SET")
    assert missing.status == "failed"
    assert "OMOP_TEST_NOT_SET is not set" in (missing.error or "")
    assert "pw-0f9e8d7c6b5a" not in database_text(runtime)


def test_cli_contract_and_unreachable_database(
        runtime: Runtime, target: str, omop_url: str, config: Any) -> None:
    env = {"CATALOGUE_DATABASE_URL": config.database_url, "CATALOGUE_DATA_DIR": config.data_dir,
           "CATALOGUE_SECRET_KEY": TEST_SECRET, "CATALOGUE_ENV": "test"}
    runner = CliRunner()
    ok = runner.invoke(main, ["harvest", "omop", omop_url, "--organisation", "org-a",
                              "--dataset", "omop-ds", "--schema", "cdm", "--allow-private",
                              "--json"], env=env)
    assert ok.exit_code == 0, ok.output
    summary = json.loads(ok.output.strip().splitlines()[-1])
    assert summary["status"] == "completed" and summary["counts"]["created"] > 0

    # nothing listens on port 1: the run fails with a clear message, exit status 1
    down = runner.invoke(main, ["harvest", "omop", "postgresql://reader@127.0.0.1:1/omop",
                                "--organisation", "org-a", "--dataset", "omop-ds",
                                "--allow-private", "--json"], env=env)
    assert down.exit_code == 1, down.output
    failed = json.loads(down.output.strip().splitlines()[-1])
    assert failed["status"] == "failed"
    assert failed["error"].startswith("cannot connect to the OMOP database at 127.0.0.1:1/omop")

    # a loopback database needs an administrator's permission (another source: the one above
    # keeps the permission it was given)
    refused = runner.invoke(main, ["harvest", "omop", "postgresql://reader@127.0.0.1:2/omop",
                                   "--organisation", "org-a", "--dataset", "omop-ds"], env=env)
    assert refused.exit_code == 1
    assert "loopback" in refused.output

    # not an OMOP schema
    wrong = runner.invoke(main, ["harvest", "omop", omop_url, "--organisation", "org-a",
                                 "--dataset", "omop-ds", "--schema", "nothing_here",
                                 "--allow-private"], env=env)
    assert wrong.exit_code == 1
    assert "has no person table" in wrong.output


def test_a_study_uid_under_two_persons_is_kept_under_the_first(
        runtime: Runtime, target: str, omop_url: str) -> None:
    top = sql(omop_url, "SELECT max(image_occurrence_id) FROM cdm.image_occurrence")[0][0]
    execute(omop_url, "INSERT INTO cdm.image_occurrence (image_occurrence_id, person_id, "
            "procedure_occurrence_id, image_occurrence_date, image_study_uid, "
            "image_series_uid, modality_concept_id) VALUES "
            "(%s, 5, 1, '2019-02-03', '1.2.826.77', '1.2.826.77.1', 2128009190), "
            "(%s, 9, 1, '2019-02-03', '1.2.826.77', '1.2.826.77.2', 2128009190)",
            (top + 1, top + 2))
    report = harvest(runtime, omop_url)
    assert report.status == "completed", report.error
    errors = errors_of(report)
    assert set(errors) == {f"image_occurrence:{top + 2}"}
    assert "another person" in errors[f"image_occurrence:{top + 2}"]["message"]
    # what is stored is the source without the second person's series
    execute(omop_url, "DELETE FROM cdm.image_occurrence WHERE image_occurrence_id = %s",
            (top + 2,))
    assert stored(runtime) == truth(omop_url)
    again = harvest(runtime, omop_url)  # now consistent: nothing to write
    assert again.counts["created"] == again.counts["updated"] == 0
