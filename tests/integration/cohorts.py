"""A staged population for the cohort tests, and SQL ground truth computed independently of
the search engines (plain SQL over the records in PostgreSQL)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.store.audit import enqueue
from catalogue.store.datasets import DatasetRepository, content_hash

LUNG_ADENO = "snomed:254626006"
LUNG = "snomed:93880001"          # primary malignant neoplasm of lung (parent of NSCLC...)
NSCLC = "snomed:254637007"
BREAST = "snomed:254837009"
DUCTAL = "snomed:408643008"       # infiltrating duct carcinoma of breast (child of BREAST)
PROSTATE = "snomed:399068003"
GLIOBLASTOMA = "snomed:393563007"
DIAGNOSES = (LUNG_ADENO, NSCLC, BREAST, DUCTAL, PROSTATE, GLIOBLASTOMA)
#: diagnosis -> (modality, body part) choices of its studies
IMAGING = {
    LUNG_ADENO: [("CT", "CHEST"), ("CT", "LUNG"), ("PT", "WHOLEBODY"), ("MR", "BRAIN")],
    NSCLC: [("CT", "CHEST"), ("PT", "WHOLEBODY")],
    BREAST: [("MG", "BREAST"), ("MR", "BREAST"), ("US", "BREAST")],
    DUCTAL: [("MG", "BREAST"), ("CT", "CHEST")],
    PROSTATE: [("MR", "PROSTATE"), ("PT", "PELVIS"), ("CT", "ABDOMEN")],
    GLIOBLASTOMA: [("MR", "BRAIN"), ("CT", "HEAD")],
}


@dataclass
class Staged:
    datasets: list[str]
    organisations: list[str]
    subjects: dict[str, list[str]] = field(default_factory=dict)  # dataset -> subject ids


def add_dataset(rt: Runtime, organisation: str, identifier: str, country: str) -> str:
    ds = Dataset(identifier=identifier, organisation_id=organisation,
                 title={"en": identifier.replace("-", " ").title()},
                 status=DatasetStatus.PUBLISHED, countries=[country])
    ds.content_hash = content_hash(ds)
    with rt.database.transaction() as conn:
        DatasetRepository(conn).write_many([ds], [])
    assert ds.id is not None
    return ds.id


def add_subject(conn: Any, dataset_id: str, key: str, sex: str, birth_year: int,
                diagnoses: list[str], studies: list[tuple[str, str, int, int]]) -> str:
    """One subject: ``studies`` as (modality, body part, age at study, year)."""
    row = conn.execute(
        "INSERT INTO subjects (dataset_id, subject_key, sex, birth_year) VALUES (%s, %s, %s, %s) "
        "RETURNING id", (dataset_id, key, sex, birth_year)).fetchone()
    sid = str(row["id"])
    for n, (modality, body_part, age, year) in enumerate(studies):
        modalities = ["PT", "CT"] if modality == "PT" else [modality]
        conn.execute(
            "INSERT INTO imaging_studies (subject_id, study_key, modalities, body_parts, "
            "manufacturer, study_month, age_at_study) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (sid, f"{key}-{n}", modalities, [body_part],
             "Siemens Healthineers" if n % 2 else "GE HealthCare", date(year, 1 + n % 12, 1), age))
    for n, concept in enumerate(diagnoses):
        system, code = concept.split(":")
        conn.execute("INSERT INTO conditions (subject_id, system, code, concept, condition_key) "
                     "VALUES (%s, %s, %s, %s, %s)", (sid, system, code, concept, f"c{n}"))
    return sid


def stage(rt: Runtime, seed: int = 7, per_dataset: int = 60) -> Staged:
    """Three providers in two countries, five datasets, correlated diagnoses and imaging; one
    subject with 60 studies (study-count amplification)."""
    rng = random.Random(seed)
    orgs = [("prov-a", "ES"), ("prov-b", "ES"), ("prov-c", "IT")]
    for org, country in orgs:
        rt.identities.create_organisation(SYSTEM, Organisation(org, org.upper(), country))
    staged = Staged([], [o for o, _ in orgs])
    plan = [("prov-a", "lung-ct", (LUNG_ADENO, NSCLC)), ("prov-a", "breast-mg", (BREAST, DUCTAL)),
            ("prov-b", "prostate-mr", (PROSTATE,)), ("prov-b", "mixed", DIAGNOSES),
            ("prov-c", "brain", (GLIOBLASTOMA, LUNG_ADENO))]
    for org, identifier, diagnoses in plan:
        country = dict(orgs)[org]
        ds = add_dataset(rt, org, identifier, country)
        staged.datasets.append(ds)
        ids = []
        with rt.database.transaction() as conn:
            for n in range(per_dataset):
                dx = rng.choice(diagnoses)
                sex = ("female" if dx in (BREAST, DUCTAL) else "male" if dx == PROSTATE
                       else rng.choice(["female", "male", "male", "unknown"]))
                age0 = rng.randint(35, 85)
                year0 = rng.randint(2010, 2020)
                studies = []
                for k in range(rng.choice([1, 1, 2, 3, 4])):
                    modality, body = rng.choice(IMAGING[dx])
                    studies.append((modality, body, age0 + k, year0 + k))
                extra = [rng.choice(DIAGNOSES)] if rng.random() < 0.1 else []
                ids.append(add_subject(conn, ds, f"{identifier}-{n}", sex, year0 - age0,
                                       [dx, *[e for e in extra if e != dx]], studies))
            if identifier == "lung-ct":  # one subject with 60 chest CTs
                ids.append(add_subject(conn, ds, "amplifier", "male", 1950, [LUNG_ADENO],
                                       [("CT", "CHEST", 60 + k // 10, 2010 + k // 6)
                                        for k in range(60)]))
            enqueue(conn, "subject", ids)
        staged.subjects[ds] = ids
    assert rt.indexer is not None
    rt.indexer.drain()
    return staged


# -- SQL ground truth (independent of the engines and of catalogue.cohorts) -------------------
def closure(vocabulary: str, concept: str) -> list[str]:
    from catalogue.ontology import get_vocabulary

    return [concept, *get_vocabulary(vocabulary).descendants(concept)]


def sql_counts(rt: Runtime, subject_sql: str, study_sql: str, params: dict[str, Any],
               cap: int = 20, group: str | None = None) -> dict[Any, tuple[int, int]]:
    """``{group value (or None): (subjects, studies)}``.

    ``subject_sql``: a boolean SQL condition on subject ``s``; ``study_sql``: a condition on
    study ``st`` (its studies that are counted, among its first ``cap`` by id); ``group``: an
    SQL expression on ``s``/``d`` to group by."""
    key = group or "NULL"
    query = f"""
        WITH ranked AS (
            SELECT st.*, row_number() OVER (PARTITION BY st.subject_id ORDER BY st.id) AS rank
            FROM imaging_studies st),
        matched AS (
            SELECT s.id, {key} AS g FROM subjects s JOIN datasets d ON d.id = s.dataset_id
            WHERE d.status = 'published' AND ({subject_sql}))
        SELECT m.g, count(DISTINCT m.id) AS subjects,
               (SELECT count(*) FROM ranked st JOIN matched m2 ON m2.id = st.subject_id
                WHERE m2.g IS NOT DISTINCT FROM m.g AND st.rank <= %(cap)s
                  AND ({study_sql})) AS studies
        FROM matched m GROUP BY m.g"""
    with rt.database.transaction() as conn:
        rows = conn.execute(query, {**params, "cap": cap}).fetchall()
    return {r["g"]: (int(r["subjects"]), int(r["studies"])) for r in rows}
