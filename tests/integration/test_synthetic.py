"""The synthetic population generator: counts, vocabularies, realistic correlations, consistent
ages, determinism, and coexistence with rows already in the database."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from catalogue.bench.synthetic import (
    CANCER_TYPES,
    COUNTRIES,
    MANUFACTURERS,
    CancerType,
    GenerationReport,
    Spec,
    check_vocabularies,
    generate,
)
from catalogue.ontology import get_vocabulary
from catalogue.testing.search_corpus import IMAGING_CATEGORY
from tests.conftest import _with_database

_names = itertools.count()
SMALL = Spec(providers=3, countries=2, datasets=20, subjects=5000, studies=15000, seed=7)


def _generate(url: str, spec: Spec) -> GenerationReport:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        report = generate(conn, spec)
        conn.commit()
    return report


@pytest.fixture(scope="module")
def fresh_db(pg_url: str, template_db: str) -> Iterator[Any]:
    """Makes migrated databases for this module (cloned from the template); dropped after."""
    names: list[str] = []

    def make() -> str:
        name = f"syn_{os.getpid()}_{next(_names)}"
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        names.append(name)
        return _with_database(pg_url, name)

    yield make
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def small(fresh_db: Any) -> tuple[str, GenerationReport]:
    url = fresh_db()
    return url, _generate(url, SMALL)


def _rows(url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(sql, params).fetchall()


def _one(url: str, sql: str, params: Any = None) -> Any:
    return next(iter(_rows(url, sql, params)[0].values()))


def _digest(url: str) -> str:
    """md5 of every generated row, database ids left out (subjects by dataset and key)."""
    return str(_one(url, """
        SELECT md5(string_agg(t, E'\\n' ORDER BY t)) FROM (
          SELECT concat_ws('|', 'o', id, name, country) AS t FROM organisations
          UNION ALL
          SELECT concat_ws('|', 'd', id, organisation_id, identifier, status, title, description,
                           conditions, modalities, body_parts, manufacturers, countries, sexes,
                           number_of_individuals, number_of_studies, min_age, max_age,
                           temporal_start, temporal_end, issued, modified, published_at)
            FROM datasets
          UNION ALL
          SELECT concat_ws('|', 's', dataset_id, subject_key, sex, birth_year) FROM subjects
          UNION ALL
          SELECT concat_ws('|', 'st', s.dataset_id, s.subject_key, st.study_key, st.modalities,
                           st.body_parts, st.manufacturer, st.series_count, st.instance_count,
                           st.study_month, st.age_at_study)
            FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id
          UNION ALL
          SELECT concat_ws('|', 'c', s.dataset_id, s.subject_key, c.system, c.code, c.concept,
                           c.condition_key)
            FROM conditions c JOIN subjects s ON s.id = c.subject_id) AS x"""))


def _subjects_with(url: str, concept: str) -> str:
    """SQL for the subjects diagnosed with ``concept`` or a narrower concept."""
    ids = [concept, *get_vocabulary("conditions").descendants(concept)]
    quoted = ", ".join(f"'{i}'" for i in ids)
    return f"SELECT DISTINCT subject_id FROM conditions WHERE concept IN ({quoted})"


def test_the_spec_is_honoured(small: tuple[str, GenerationReport]) -> None:
    url, report = small
    assert (report.organisations, report.datasets, report.subjects) == (3, 20, 5000)
    assert abs(report.studies - SMALL.studies) <= 0.05 * SMALL.studies
    counts = _rows(url, """SELECT (SELECT count(*) FROM organisations) AS o,
        (SELECT count(DISTINCT country) FROM organisations) AS countries,
        (SELECT count(*) FROM datasets WHERE status = 'published'
                                        AND published_at IS NOT NULL) AS d,
        (SELECT count(*) FROM subjects) AS s, (SELECT count(*) FROM imaging_studies) AS st,
        (SELECT count(*) FROM conditions) AS c, (SELECT count(*) FROM outbox) AS outbox""")[0]
    assert counts == {"o": 3, "countries": 2, "d": 20, "s": 5000, "st": report.studies,
                      "c": report.conditions, "outbox": 0}
    assert {r["country"] for r in _rows(url, "SELECT country FROM organisations")} <= set(
        COUNTRIES)
    # about 5% of subjects have a second primary cancer
    assert 0.03 * 5000 <= report.conditions - 5000 <= 0.07 * 5000


def test_every_code_is_a_vocabulary_id(small: tuple[str, GenerationReport]) -> None:
    url, _ = small
    check_vocabularies()
    conditions = get_vocabulary("conditions")
    for row in _rows(url, "SELECT DISTINCT system, code, concept FROM conditions"):
        resolved = conditions.resolve(f"{row['system']}:{row['code']}")
        assert resolved is not None and resolved.id == row["concept"]
    for name in ("modalities", "body_parts"):
        known = {c.id for c in get_vocabulary(name).concepts()}
        used = {r["v"] for r in _rows(url, f"SELECT DISTINCT unnest({name}) AS v "
                                           "FROM imaging_studies")}
        declared = {r["v"] for r in _rows(url, f"SELECT DISTINCT unnest({name}) AS v "
                                               "FROM datasets")}
        assert used and used <= known and declared <= known
    manufacturers = {r["manufacturer"] for r in _rows(
        url, "SELECT DISTINCT manufacturer FROM imaging_studies")}
    assert None in manufacturers and manufacturers - {None} <= {m for m, _ in MANUFACTURERS}


def test_datasets_describe_their_records(small: tuple[str, GenerationReport]) -> None:
    url, _ = small
    rows = _rows(url, """
        SELECT d.*, o.country,
          (SELECT count(*) FROM subjects s WHERE s.dataset_id = d.id) AS n_subjects,
          (SELECT count(*) FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id
            WHERE s.dataset_id = d.id) AS n_studies,
          (SELECT array_agg(DISTINCT c.concept) FROM conditions c JOIN subjects s
            ON s.id = c.subject_id WHERE s.dataset_id = d.id) AS concepts,
          (SELECT array_agg(DISTINCT m) FROM imaging_studies st JOIN subjects s
            ON s.id = st.subject_id, unnest(st.modalities) AS m WHERE s.dataset_id = d.id)
            AS used_modalities,
          (SELECT min(st.age_at_study) FROM imaging_studies st JOIN subjects s
            ON s.id = st.subject_id WHERE s.dataset_id = d.id) AS youngest,
          (SELECT max(st.study_month) FROM imaging_studies st JOIN subjects s
            ON s.id = st.subject_id WHERE s.dataset_id = d.id) AS last_month
        FROM datasets d JOIN organisations o ON o.id = d.organisation_id""")
    for r in rows:
        assert r["countries"] == [r["country"]] and r["title"]["en"]
        # vocabulary IRIs, as harvested descriptions store them (a bare code is left out of
        # the DCAT export)
        assert r["health_categories"] == [IMAGING_CATEGORY]
        assert r["number_of_individuals"] == r["n_subjects"]
        assert r["number_of_studies"] == r["n_studies"]
        if r["n_subjects"]:
            assert sorted(r["conditions"]) == sorted(r["concepts"])
            assert sorted(r["modalities"]) == sorted(r["used_modalities"])
            assert r["min_age"] == r["youngest"]
            assert r["temporal_end"].replace(day=1) == r["last_month"]
            assert r["temporal_start"] <= r["temporal_end"] < r["issued"].date()
    # skewed sizes: a few large datasets, many small ones
    sizes = sorted(r["n_subjects"] for r in rows)
    assert sizes[-1] > 3 * sizes[len(sizes) // 2]
    # each dataset is about one to three cancer types (second primaries aside)
    type_of = {c: t.name for t in CANCER_TYPES for c, _ in t.concepts}
    per_type: dict[str, dict[str, int]] = {}
    for r in _rows(url, "SELECT s.dataset_id, c.concept, count(*) AS n FROM conditions c "
                        "JOIN subjects s ON s.id = c.subject_id GROUP BY 1, 2"):
        counts = per_type.setdefault(str(r["dataset_id"]), {})
        counts[type_of[r["concept"]]] = counts.get(type_of[r["concept"]], 0) + r["n"]
    for r in rows:
        if r["n_subjects"] >= 100:
            focus = [n for n in per_type[str(r["id"])].values() if n >= 0.05 * r["n_subjects"]]
            assert 1 <= len(focus) <= 3


def test_sex_follows_the_cancer_type(small: tuple[str, GenerationReport]) -> None:
    url, _ = small
    sql = "SELECT sex, count(*) AS n FROM subjects WHERE id IN ({}) GROUP BY sex"
    breast = {r["sex"]: r["n"] for r in _rows(url, sql.format(
        _subjects_with(url, "snomed:254837009")))}
    prostate = {r["sex"]: r["n"] for r in _rows(url, sql.format(
        _subjects_with(url, "snomed:399068003")))}
    assert sum(breast.values()) > 100 and breast["female"] >= 0.95 * sum(breast.values())
    assert prostate.keys() == {"male"} and prostate["male"] > 100
    everyone = {r["sex"]: r["n"] for r in _rows(
        url, "SELECT sex, count(*) AS n FROM subjects GROUP BY sex")}
    assert everyone.get("unknown", 0) + everyone.get("other", 0) <= 0.02 * 5000
    assert everyone["male"] > 1000 and everyone["female"] > 1000


def test_imaging_follows_the_diagnosis(small: tuple[str, GenerationReport]) -> None:
    url, _ = small
    share = """SELECT avg(CASE WHEN {} THEN 1.0 ELSE 0 END) AS share, count(*) AS n
        FROM imaging_studies WHERE subject_id IN ({}) AND subject_id IN (
            SELECT subject_id FROM conditions GROUP BY subject_id HAVING count(*) = 1)"""
    lung = _rows(url, share.format(
        "'CT' = ANY(modalities) AND body_parts && ARRAY['CHEST', 'LUNG']",
        _subjects_with(url, "snomed:93880001")))[0]
    assert lung["n"] > 300 and lung["share"] > 0.6
    breast = _rows(url, share.format("body_parts && ARRAY['BREAST']",
                                     _subjects_with(url, "snomed:254837009")))[0]
    assert breast["n"] > 300 and breast["share"] > 0.7
    prostate = _rows(url, share.format(
        "body_parts && ARRAY['PROSTATE', 'PELVIS', 'WHOLEBODY']",
        _subjects_with(url, "snomed:399068003")))[0]
    assert prostate["n"] > 300 and prostate["share"] > 0.8
    assert _one(url, "SELECT count(*) FROM imaging_studies WHERE cardinality(modalities) = 2 "
                     "AND modalities @> ARRAY['PT', 'CT']") > 0
    assert _one(url, "SELECT count(*) FROM imaging_studies WHERE series_count < 1 "
                     "OR instance_count < series_count") == 0


def test_studies_per_subject_have_a_long_tail(small: tuple[str, GenerationReport]) -> None:
    url, _ = small
    per = _rows(url, """SELECT count(*) FILTER (WHERE n > 20) AS over_20, max(n) AS most,
        min(n) AS fewest, avg(n) AS mean, count(*) FILTER (WHERE n = 1) AS single FROM (
        SELECT count(*) AS n FROM imaging_studies GROUP BY subject_id) AS x""")[0]
    assert per["fewest"] >= 1 and per["most"] <= 60
    assert 0 < per["over_20"] < 0.02 * 5000
    assert 2.8 <= float(per["mean"]) <= 3.2
    assert per["single"] > 0.2 * 5000  # many subjects have one study only
    assert _one(url, "SELECT count(*) FROM subjects s WHERE NOT EXISTS ("
                     "SELECT 1 FROM imaging_studies st WHERE st.subject_id = s.id)") == 0


def test_ages_and_dates_are_consistent(small: tuple[str, GenerationReport]) -> None:
    url, _ = small
    row = _rows(url, """SELECT min(st.age_at_study) AS youngest, max(st.age_at_study) AS oldest,
        min(st.study_month) AS first, max(st.study_month) AS last,
        count(*) FILTER (WHERE extract(day FROM st.study_month) <> 1) AS not_first_day,
        count(*) FILTER (WHERE extract(year FROM st.study_month)::int - s.birth_year
                         - st.age_at_study NOT IN (0, 1)) AS inconsistent
        FROM imaging_studies st JOIN subjects s ON s.id = st.subject_id""")[0]
    assert 18 <= row["youngest"] and row["oldest"] <= 101
    assert row["first"].year >= 2005 and row["last"].year <= 2025
    assert row["not_first_day"] == 0 and row["inconsistent"] == 0
    # along a subject's follow-up (at most five years), age never decreases
    follow = _rows(url, """SELECT count(*) FILTER (WHERE age < previous) AS younger,
        max(span) AS longest FROM (
          SELECT age_at_study AS age, lag(age_at_study) OVER w AS previous,
                 max(study_month) OVER (PARTITION BY subject_id)
                 - min(study_month) OVER (PARTITION BY subject_id) AS span
          FROM imaging_studies WINDOW w AS (PARTITION BY subject_id ORDER BY study_month, id)
        ) AS x""")[0]
    assert follow["younger"] == 0 and follow["longest"] <= 5 * 366


def test_the_same_spec_writes_the_same_rows(
        small: tuple[str, GenerationReport], fresh_db: Any) -> None:
    url, report = small
    other = fresh_db()
    with psycopg.connect(other) as conn:  # shift the sequences: ids differ, rows must not
        conn.execute("SELECT setval(pg_get_serial_sequence('subjects', 'id'), 1000)")
    again = _generate(other, SMALL)
    assert (again.subjects, again.studies, again.conditions) == (
        report.subjects, report.studies, report.conditions)
    assert _digest(other) == _digest(url)
    assert _one(other, "SELECT min(id) FROM subjects") > 1000
    changed = fresh_db()
    _generate(changed, Spec(**{**SMALL.__dict__, "seed": SMALL.seed + 1}))
    assert _digest(changed) != _digest(url)


def test_rows_already_there_are_kept_and_ids_do_not_collide(fresh_db: Any) -> None:
    url = fresh_db()
    with psycopg.connect(url, row_factory=dict_row) as conn:
        conn.execute("INSERT INTO organisations (id, name, country) VALUES ('org-x', 'X', 'ES')")
        dataset = conn.execute(
            "INSERT INTO datasets (organisation_id, identifier) VALUES ('org-x', 'x') "
            "RETURNING id").fetchone()
        assert dataset is not None
        for n in range(3):
            sid = conn.execute(
                "INSERT INTO subjects (dataset_id, subject_key, sex, birth_year) "
                "VALUES (%s, %s, 'female', 1970) RETURNING id", (dataset["id"], f"k{n}"),
            ).fetchone()
            assert sid is not None
            conn.execute("INSERT INTO imaging_studies (subject_id, study_key, modalities) "
                         "VALUES (%s, 'st', '{CT}')", (sid["id"],))
            conn.execute("INSERT INTO conditions (subject_id, system, code) "
                         "VALUES (%s, 'snomed', '254837009')", (sid["id"],))
    spec = Spec(providers=2, countries=2, datasets=3, subjects=300, studies=900, seed=1)
    first = _generate(url, spec)
    second = _generate(url, Spec(**{**spec.__dict__, "prefix": "other"}))
    with pytest.raises(ValueError, match="prefix"):
        _generate(url, spec)  # the same organisations again
    counts = _rows(url, """SELECT (SELECT count(*) FROM subjects) AS s,
        (SELECT count(*) FROM imaging_studies) AS st, (SELECT count(*) FROM conditions) AS c,
        (SELECT count(*) FROM subjects WHERE dataset_id = %s) AS kept""", (dataset["id"],))[0]
    assert counts == {"s": 3 + 600, "st": 3 + first.studies + second.studies,
                      "c": 3 + first.conditions + second.conditions, "kept": 3}
    with psycopg.connect(url, row_factory=dict_row) as conn:  # the sequences moved on
        row = conn.execute(
            "INSERT INTO subjects (dataset_id, subject_key) VALUES (%s, 'later') RETURNING id",
            (dataset["id"],)).fetchone()
        assert row is not None
        assert row["id"] > _one(url, "SELECT max(id) FROM subjects WHERE subject_key <> 'later'")


def test_bad_specs_and_unknown_codes_are_refused(fresh_db: Any) -> None:
    url = fresh_db()
    for bad in ({"prefix": "Not OK"}, {"countries": len(COUNTRIES) + 1}, {"datasets": 0}):
        with pytest.raises(ValueError):
            _generate(url, Spec(**{**SMALL.__dict__, **bad}))
    assert _one(url, "SELECT count(*) FROM organisations") == 0
    lung = CANCER_TYPES[2]
    with pytest.raises(ValueError, match="snomed:0"):
        check_vocabularies([CancerType("x", 1, 0.5, (60, 10), (("snomed:0", 1.0),),
                                       lung.protocols)])
