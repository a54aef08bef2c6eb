"""OMOP CDM test databases: the official v5.4 DDL, the Eunomia Synthea27Nj sample, the OHDSI
medical-imaging extension (MI-CDM: ``image_occurrence``, ``image_feature``) and generated
imaging rows; plus a bulk generator for the ingest benchmark.

Inputs (``tests/data/omop``, or ``CATALOGUE_OMOP_DATA``; licences in ``tests/data/
SOURCES.md``, all Apache-2.0): ``OMOPCDM_postgresql_5.4_*.sql`` (OHDSI/CommonDataModel),
``mi-cdm/MICDM_postgresql_5.4_*.sql`` (OHDSI ImageWG), ``eunomia-synthea27nj/*.csv`` (OHDSI
EunomiaDatasets: 27 synthetic Synthea patients of New Jersey, with their vocabulary subset).

Foreign keys are not created: Eunomia's vocabulary subset does not satisfy all of them, and the
tests need rows naming concepts the concept table lacks.

What :func:`build_eunomia` adds to the sample, deterministically from a seed:

- the concepts imaging needs, which Eunomia's vocabulary subset lacks: the DICOM modality
  concepts of the OHDSI imaging vocabulary (ids 2128009189… as in ImageWG's staging table),
  SNOMED body structures, imaging procedures and ICD-10-CM / ICD-O-3 cancer codes under local
  ids (≥ 2,000,100,000: the OMOP range for site-specific concepts);
- cancer diagnoses for a few adults (lung, breast, prostate, colon: SNOMED standard concept,
  ICD-10-CM or ICD-O-3 source concept) — the 27 patients have none;
- imaging studies (``image_occurrence`` rows, one per series, with a ``procedure_occurrence``
  each) that follow the patients' conditions: chest radiographs after bronchitis, cough or a
  rib fracture, CT of the head after a concussion, MR of the spine for back pain, obstetric
  ultrasound in pregnancy, staging CT and PET/CT for lung cancer, mammography, breast MR and
  ultrasound for breast cancer...; ``wadors_uri`` and ``local_path`` carry the UIDs, as in
  real extension tables;
- a few ``image_feature`` rows (lesions found on cancer studies, with their anatomic site).
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

DATA = Path(os.environ.get("CATALOGUE_OMOP_DATA")
            or Path(__file__).resolve().parents[2] / "tests" / "data" / "omop")
EUNOMIA = "eunomia-synthea27nj"
UID_ROOT = "1.2.826.0.1.3680043.8.498."  # pydicom's root for generated UIDs
EHR = 32817  # type concept "EHR"

#: DICOM modality concepts of the OHDSI imaging vocabulary (ImageWG omop_table_staging_v3.csv)
MODALITY_CONCEPTS: dict[str, tuple[int, str]] = {
    "CR": (2128009189, "Computed radiography"),
    "CT": (2128009190, "Computed tomography"),
    "DX": (2128009197, "Digital radiography"),
    "MG": (2128009228, "Mammography"),
    "MR": (2128009230, "Magnetic resonance"),
    "NM": (2128009233, "Nuclear medicine"),
    "PT": (2128009252, "Positron emission tomography"),
    "US": (2128009275, "Ultrasound"),
}

#: SNOMED CT body structures (Spec Anatomic Site), under local concept ids
SITE_CONCEPTS: dict[str, tuple[int, str, str]] = {
    "CHEST": (2000100001, "51185008", "Thoracic structure"),
    "LUNG": (2000100002, "39607008", "Lung structure"),
    "BREAST": (2000100003, "76752008", "Breast structure"),
    "BRAIN": (2000100004, "12738006", "Brain structure"),
    "HEAD": (2000100005, "69536005", "Head structure"),
    "PROSTATE": (2000100006, "41216001", "Prostatic structure"),
    "ABDOMEN": (2000100007, "818981001", "Abdomen"),
    "PELVIS": (2000100008, "12921003", "Pelvic structure"),
    "SPINE": (2000100009, "421060004", "Structure of vertebral column"),
    "HEART": (2000100010, "80891009", "Heart structure"),
    "LIVER": (2000100011, "10200004", "Liver structure"),
    "WHOLEBODY": (2000100012, "38266002", "Entire body as a whole"),
    "KNEE": (2000100013, "72696002", "Knee region structure"),
    "FOREARM": (2000100014, "14975008", "Forearm structure"),
    "ANKLE": (2000100015, "344001", "Ankle region structure"),
    "HIP": (2000100016, "29836001", "Hip region structure"),
}

#: imaging procedures (SNOMED CT), under local ids, except Eunomia's own mammography and chest
#: radiograph concepts
PROCEDURE_CONCEPTS: dict[str, tuple[int, str, str]] = {
    "CT": (2000100101, "77477000", "Computerized axial tomography"),
    "MR": (2000100102, "113091000", "Magnetic resonance imaging"),
    "PT": (2000100103, "82918005", "Positron emission tomography"),
    "US": (2000100104, "16310003", "Diagnostic ultrasonography"),
    "DX": (2000100105, "168537006", "Plain radiography"),
    "MG": (4324693, "71651007", "Mammography"),
}

#: cancer source codes: (local id, vocabulary, code, name)
SOURCE_CONCEPTS: dict[str, tuple[int, str, str, str]] = {
    "lung-icd10": (2000100201, "ICD10CM", "C34.90", "Malignant neoplasm of unspecified part of "
                   "unspecified bronchus or lung"),
    "lung-icdo3": (2000100202, "ICDO3", "8140/3-C34.1", "Adenocarcinoma, NOS, of upper lobe, "
                   "lung"),
    "breast-icd10": (2000100203, "ICD10CM", "C50.911", "Malignant neoplasm of unspecified site "
                     "of right female breast"),
    "prostate-icd10": (2000100204, "ICD10CM", "C61", "Malignant neoplasm of prostate"),
    "colon-icd10": (2000100205, "ICD10CM", "C18.9", "Malignant neoplasm of colon, unspecified"),
}
LESION_CONCEPT = (2000100301, "Longest diameter of lesion")

#: Eunomia standard concepts of the cancers added: (concept id, source concept key)
CANCERS: dict[str, tuple[int, str]] = {
    "lung": (4115276, "lung-icd10"),  # Non-small cell lung cancer
    "lung-adeno": (4115276, "lung-icdo3"),
    "breast": (4112853, "breast-icd10"),  # Malignant tumor of breast
    "prostate": (4129902, "prostate-icd10"),  # Neoplasm of prostate
    "colon": (4180790, "colon-icd10"),  # Malignant tumor of colon
}

# study templates: (modality, body part, fewest series, most series) per series group
Template = tuple[tuple[str, str, int, int], ...]
TEMPLATES: dict[str, Template] = {
    "ct_chest": (("CT", "CHEST", 2, 4),),
    "pet_ct": (("PT", "WHOLEBODY", 1, 1), ("CT", "WHOLEBODY", 1, 2)),
    "mg": (("MG", "BREAST", 2, 4),),
    "mr_breast": (("MR", "BREAST", 3, 5),),
    "us_breast": (("US", "BREAST", 1, 1),),
    "mr_prostate": (("MR", "PROSTATE", 3, 4),),
    "ct_abdomen": (("CT", "ABDOMEN", 2, 3),),
    "dx_chest": (("DX", "CHEST", 1, 2),),
    "ct_head": (("CT", "HEAD", 1, 2),),
    "mr_brain": (("MR", "BRAIN", 3, 5),),
    "mr_spine": (("MR", "SPINE", 2, 3),),
    "us_pelvis": (("US", "PELVIS", 1, 1),),
    "us_heart": (("US", "HEART", 1, 1),),
    "ct_heart": (("CT", "HEART", 1, 2),),
    "dx_knee": (("DX", "KNEE", 1, 2),),
    "dx_forearm": (("DX", "FOREARM", 1, 1),),
    "dx_ankle": (("DX", "ANKLE", 1, 1),),
    "dx_hip": (("DX", "HIP", 1, 2),),
    "cr_chest": (("CR", "CHEST", 1, 1),),
}

#: condition (SNOMED code) → the imaging it is followed by
IMAGING_AFTER: dict[str, tuple[str, ...]] = {
    "10509002": ("dx_chest",),  # Acute bronchitis
    "49727002": ("cr_chest",),  # Cough
    "840539006": ("ct_chest",),  # COVID-19
    "33737001": ("dx_chest",),  # Fracture of rib
    "58150001": ("dx_chest",),  # Fracture of clavicle
    "65966004": ("dx_forearm",),  # Fracture of forearm
    "16114001": ("dx_ankle",),  # Fracture of ankle
    "359817006": ("dx_hip", "ct_abdomen"),  # Closed fracture of hip
    "62106007": ("ct_head",),  # Concussion with no loss of consciousness
    "278860009": ("mr_spine",),  # Chronic low back pain
    "72892002": ("us_pelvis",),  # Normal pregnancy
    "26929004": ("mr_brain",),  # Alzheimer's disease
    "53741008": ("us_heart", "ct_heart"),  # Coronary arteriosclerosis
    "88805009": ("us_heart",),  # Chronic congestive heart failure
    "239873007": ("dx_knee",),  # Osteoarthritis of knee
    "64859006": ("dx_hip",),  # Osteoporosis
    # the cancers this module adds: staging, then follow-up
    "254637007": ("ct_chest", "pet_ct", "ct_chest"),
    "254837009": ("mg", "mr_breast", "us_breast"),
    "126906006": ("mr_prostate", "pet_ct"),
    "363406005": ("ct_abdomen", "ct_chest"),
}


@dataclass
class ImagingSummary:
    """What :func:`generate_imaging` added."""

    conditions: int = 0
    studies: int = 0
    series: int = 0
    features: int = 0
    uids: list[str] = field(default_factory=list)  # every study and series UID (to find leaks)


@dataclass
class BulkSummary:
    """What :func:`generate_bulk` created, and how long it took."""

    persons: int
    studies: int
    rows: int
    features: int
    seconds: float


# -- schema ---------------------------------------------------------------------------------
def _statements(path: Path, schema: str) -> list[str]:
    text = path.read_text(encoding="utf-8-sig")
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = "\n".join(line for line in text.splitlines() if not line.strip().startswith("--"))
    quoted = '"' + schema.replace('"', '""') + '"'
    text = text.replace("@cdmDatabaseSchema", quoted)
    # CLUSTER only orders rows physically; it is slow on big tables and adds nothing here
    return [s.strip() for s in text.split(";")
            if s.strip() and not s.strip().upper().startswith("CLUSTER")]


def create_tables(conn: psycopg.Connection[Any], schema: str, *, imaging: bool = True,
                  data: Path = DATA) -> None:
    """The OMOP CDM v5.4 tables (and the MI-CDM ones) in ``schema`` (created if needed)."""
    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    files = [data / "OMOPCDM_postgresql_5.4_ddl.sql"]
    if imaging:
        files.append(data / "mi-cdm" / "MICDM_postgresql_5.4_ddl.sql")
    for path in files:
        for statement in _statements(path, schema):
            conn.execute(statement.encode())


def create_keys(conn: psycopg.Connection[Any], schema: str, *, imaging: bool = True,
                data: Path = DATA) -> None:
    """Primary keys and the CDM's indices (after loading: faster)."""
    files = [data / "OMOPCDM_postgresql_5.4_primary_keys.sql",
             data / "OMOPCDM_postgresql_5.4_indices.sql"]
    if imaging:
        files += [data / "mi-cdm" / "MICDM_postgresql_5.4_primary_keys.sql",
                  data / "mi-cdm" / "MICDM_postgresql_5.4_indices.sql"]
    for path in files:
        for statement in _statements(path, schema):
            conn.execute(statement.encode())


def _tables(conn: psycopg.Connection[Any], schema: str) -> set[str]:
    return {r[0] for r in conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,))}


def load_eunomia(conn: psycopg.Connection[Any], schema: str, data: Path = DATA) -> dict[str, int]:
    """COPY every Eunomia CSV into its table; returns rows per table."""
    tables = _tables(conn, schema)
    loaded: dict[str, int] = {}
    for path in sorted((data / EUNOMIA).glob("*.csv")):
        table = path.stem.lower()
        if table not in tables:
            continue
        content = path.read_bytes()
        header = content.split(b"\n", 1)[0].decode("utf-8-sig").strip()
        columns = [c.strip() for c in header.split(",")]
        statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, HEADER true)").format(
            sql.Identifier(schema, table), sql.SQL(", ").join(map(sql.Identifier, columns)))
        with conn.cursor() as cur:
            with cur.copy(statement) as copy:
                copy.write(content)
            loaded[table] = cur.rowcount
    return loaded


def add_imaging_concepts(conn: psycopg.Connection[Any], schema: str) -> int:
    """The modality, body-structure, procedure and cancer-code concepts imaging rows need."""
    rows: list[tuple[int, str, str, str, str, str | None, str]] = []
    for code, (concept_id, name) in MODALITY_CONCEPTS.items():
        rows.append((concept_id, name, "Measurement", "DICOM", "DICOM Value Sets", None, code))
    for concept_id, code, name in SITE_CONCEPTS.values():
        rows.append((concept_id, name, "Spec Anatomic Site", "SNOMED", "Body Structure", "S",
                     code))
    for concept_id, code, name in PROCEDURE_CONCEPTS.values():
        rows.append((concept_id, name, "Procedure", "SNOMED", "Procedure", "S", code))
    for concept_id, vocabulary, code, name in SOURCE_CONCEPTS.values():
        concept_class = "ICDO Condition" if vocabulary == "ICDO3" else "5-char billing code"
        rows.append((concept_id, name, "Condition", vocabulary, concept_class, None, code))
    rows.append((LESION_CONCEPT[0], LESION_CONCEPT[1], "Measurement", "Local", "Feature", None,
                 "lesion-diameter"))
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL("INSERT INTO {table} (concept_id, concept_name, domain_id, vocabulary_id, "
                    "concept_class_id, standard_concept, concept_code, valid_start_date, "
                    "valid_end_date) SELECT %s, %s, %s, %s, %s, %s, %s, DATE '1970-01-01', "
                    "DATE '2099-12-31' WHERE NOT EXISTS (SELECT 1 FROM {table} "
                    "WHERE concept_id = %s)").format(table=sql.Identifier(schema, "concept")),
            [(*row, row[0]) for row in rows])
    return len(rows)


# -- generated imaging for the Eunomia persons ---------------------------------------------
@dataclass
class _Ids:
    condition: int
    procedure: int
    image: int
    feature: int


def _next_ids(conn: psycopg.Connection[Any], schema: str) -> _Ids:
    def top(table: str) -> int:
        row = conn.execute(sql.SQL("SELECT coalesce(max({}), 0) FROM {}").format(
            sql.Identifier(f"{table}_id"), sql.Identifier(schema, table))).fetchone()
        return int(row[0]) if row else 0
    return _Ids(top("condition_occurrence"), top("procedure_occurrence"),
                top("image_occurrence"), top("image_feature"))


def _uid(rng: random.Random) -> str:
    return UID_ROOT + str(rng.getrandbits(100))


def generate_imaging(conn: psycopg.Connection[Any], schema: str, seed: int = 0
                     ) -> ImagingSummary:
    """Cancer diagnoses for a few persons and imaging studies that follow the conditions (see
    the module docstring); the same seed gives the same rows."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    summary = ImagingSummary()
    ids = _next_ids(conn, schema)
    table = {name: sql.Identifier(schema, name) for name in (
        "person", "concept", "condition_occurrence", "procedure_occurrence",
        "image_occurrence", "image_feature")}
    persons = conn.execute(sql.SQL(
        "SELECT person_id, gender_concept_id, year_of_birth, month_of_birth, day_of_birth "
        "FROM {} ORDER BY person_id").format(table["person"])).fetchall()
    births = {p[0]: date(p[2], p[3] or 1, p[4] or 1) for p in persons}

    # cancers for adults: two lung, two breast (women), one prostate (man), one colon
    adults = [p for p in persons if p[2] <= 1975]
    rng.shuffle(adults)
    wanted = [("lung", None), ("lung-adeno", None), ("breast", 8532), ("breast", 8532),
              ("prostate", 8507), ("colon", None)]
    chosen: set[int] = set()
    new_conditions = []
    for kind, sex in wanted:
        person = next((p for p in adults if p[0] not in chosen and (sex is None or p[1] == sex)),
                      None)
        if person is None:
            continue
        chosen.add(person[0])
        standard, source_key = CANCERS[kind]
        source_id, _vocabulary, source_code, _name = SOURCE_CONCEPTS[source_key]
        start = date(rng.randint(2012, 2020), rng.randint(1, 12), rng.randint(1, 28))
        ids.condition += 1
        new_conditions.append((ids.condition, person[0], standard, start, start, EHR,
                               source_code, source_id))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL(
            "INSERT INTO {} (condition_occurrence_id, person_id, condition_concept_id, "
            "condition_start_date, condition_start_datetime, condition_type_concept_id, "
            "condition_source_value, condition_source_concept_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s)").format(table["condition_occurrence"]),
            new_conditions)
    summary.conditions = len(new_conditions)

    conditions = conn.execute(sql.SQL(
        "SELECT co.condition_occurrence_id, co.person_id, c.concept_code, "
        "co.condition_start_date FROM {} co JOIN {} c ON c.concept_id = "
        "co.condition_concept_id ORDER BY co.condition_occurrence_id").format(
        table["condition_occurrence"], table["concept"])).fetchall()
    procedures, images, features = [], [], []
    for _row_id, person_id, code, start in conditions:
        templates = IMAGING_AFTER.get(code)
        if not templates:
            continue
        cancer = person_id in chosen and code in ("254637007", "254837009", "126906006",
                                                  "363406005")
        if not cancer and rng.random() > 0.85:
            continue  # not every episode was imaged
        day = start
        for number, name in enumerate(templates):
            if number and not cancer:
                break  # one study per non-cancer episode
            day = day + timedelta(days=rng.randint(0, 10) if number == 0 else
                                  rng.randint(60, 200))
            if day < births[person_id] or day > date(2023, 12, 31):
                continue
            uid = _uid(rng)
            summary.uids.append(uid)
            summary.studies += 1
            template = TEMPLATES[name]
            ids.procedure += 1
            procedure_concept = PROCEDURE_CONCEPTS.get(template[0][0], PROCEDURE_CONCEPTS["DX"])
            procedures.append((ids.procedure, person_id, procedure_concept[0], day, day, EHR))
            for modality, site, fewest, most in template:
                for _ in range(rng.randint(fewest, most)):
                    ids.image += 1
                    series_uid = f"{uid}.{rng.randint(1, 999)}.{ids.image}"
                    summary.uids.append(series_uid)
                    summary.series += 1
                    site_id = SITE_CONCEPTS[site][0] if rng.random() > 0.1 else None
                    images.append((
                        ids.image, person_id, ids.procedure, site_id,
                        f"https://pacs.example.org/dicom-web/studies/{uid}/series/{series_uid}",
                        f"/archive/{person_id}/{uid}/{series_uid}", day, uid, series_uid,
                        MODALITY_CONCEPTS[modality][0]))
                    if cancer and modality in ("CT", "MG", "MR") and rng.random() < 0.4:
                        ids.feature += 1  # a lesion measured on this series
                        lesion_site = {"CHEST": "LUNG", "WHOLEBODY": "LIVER"}.get(site, site)
                        features.append((
                            ids.feature, person_id, ids.image, LESION_CONCEPT[0], EHR,
                            SITE_CONCEPTS[lesion_site][0], "https://example.org/radiomics/1.0"))
    with conn.cursor() as cur:
        cur.executemany(sql.SQL(
            "INSERT INTO {} (procedure_occurrence_id, person_id, procedure_concept_id, "
            "procedure_date, procedure_datetime, procedure_type_concept_id) "
            "VALUES (%s, %s, %s, %s, %s, %s)").format(table["procedure_occurrence"]), procedures)
        cur.executemany(sql.SQL(
            "INSERT INTO {} (image_occurrence_id, person_id, procedure_occurrence_id, "
            "anatomic_site_concept_id, wadors_uri, local_path, image_occurrence_date, "
            "image_study_uid, image_series_uid, modality_concept_id) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)").format(table["image_occurrence"]),
            images)
        cur.executemany(sql.SQL(
            "INSERT INTO {} (image_feature_id, person_id, image_occurrence_id, "
            "image_feature_concept_id, image_feature_type_concept_id, "
            "anatomic_site_concept_id, alg_system) VALUES (%s, %s, %s, %s, %s, %s, %s)").format(
            table["image_feature"]), features)
    summary.features = len(features)
    return summary


def build_eunomia(url: str, schema: str = "cdm", *, seed: int = 0, imaging: bool = True,
                  data: Path = DATA) -> ImagingSummary:
    """The Eunomia sample in ``schema`` of the database at ``url``; with ``imaging``, the
    MI-CDM tables, the imaging concepts and the generated rows (see the module docstring)."""
    with psycopg.connect(url) as conn:
        create_tables(conn, schema, imaging=imaging, data=data)
        load_eunomia(conn, schema, data)
        summary = ImagingSummary()
        if imaging:
            add_imaging_concepts(conn, schema)
            summary = generate_imaging(conn, schema, seed)
        create_keys(conn, schema, imaging=imaging, data=data)
        conn.execute("ANALYZE")
        conn.commit()
    return summary


# -- bulk generator (benchmark) -------------------------------------------------------------
def generate_bulk(url: str, schema: str = "cdm", *, rows: int = 1_000_000,
                  persons: int | None = None, seed: int = 1,
                  progress: Callable[[str], None] | None = None,
                  data: Path = DATA) -> BulkSummary:
    """A CDM with ``rows`` generated image_occurrence rows (1–3 series per study, about two on
    average), their persons and a few image_feature rows, made in the server with
    ``generate_series`` (deterministic: pseudo-random values are hashes of the row number and
    ``seed``). Conditions are left empty: the benchmark measures imaging rows."""
    import time

    started = time.perf_counter()
    persons = persons or max(1, rows // 10)
    say = progress or (lambda _message: None)
    with psycopg.connect(url) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
        create_tables(conn, schema, imaging=True, data=data)
        add_imaging_concepts(conn, schema)
        s = {name: sql.Identifier(schema, name) for name in (
            "person", "image_occurrence", "image_feature", "procedure_occurrence")}
        say(f"generating {persons} persons")
        conn.execute(sql.SQL(
            "INSERT INTO {person} (person_id, gender_concept_id, year_of_birth, month_of_birth, "
            "day_of_birth, birth_datetime, race_concept_id, ethnicity_concept_id, "
            "person_source_value) SELECT i, CASE WHEN h %% 2 = 0 THEN 8507 ELSE 8532 END, "
            "1930 + (h >> 1) %% 65, 1 + (h >> 8) %% 12, 1 + (h >> 12) %% 28, NULL, 0, 0, "
            "md5(%(seed)s || ':person:' || i)::uuid::text "
            "FROM (SELECT i, abs(hashint8extended(i, %(seed)s)) AS h "
            "FROM generate_series(1, %(persons)s::bigint) i) t").format(**s),
            {"seed": seed, "persons": persons})
        modalities = [MODALITY_CONCEPTS[m][0] for m in ("CT", "CT", "CT", "MR", "MR", "DX",
                                                        "DX", "US", "MG", "PT", "NM", "CR")]
        sites = [SITE_CONCEPTS[b][0] for b in ("CHEST", "CHEST", "ABDOMEN", "HEAD", "BRAIN",
                                               "BREAST", "PELVIS", "SPINE", "PROSTATE", "LIVER",
                                               "WHOLEBODY", "HEART")]
        studies = rows // 2 + rows // 20 + 1
        say(f"generating {rows} image_occurrence rows")
        conn.execute(sql.SQL(
            "INSERT INTO {image} (image_occurrence_id, person_id, procedure_occurrence_id, "
            "anatomic_site_concept_id, wadors_uri, local_path, image_occurrence_date, "
            "image_study_uid, image_series_uid, modality_concept_id) "
            "SELECT row_number() OVER (ORDER BY s, k), 1 + h %% %(persons)s, s, "
            "CASE WHEN (h >> 20) %% 10 = 0 THEN NULL ELSE (%(sites)s::int[])[1 + (h >> 24) %% "
            "cardinality(%(sites)s::int[])] END, "
            "'https://pacs.example.org/dicom-web/studies/' || uid || '/series/' || uid || '.' || k,"
            " NULL, DATE '2005-01-01' + ((h >> 32) %% 6900)::int, uid, uid || '.' || k, "
            "(%(modalities)s::int[])[1 + (h >> 40) %% cardinality(%(modalities)s::int[])] "
            "FROM (SELECT s, abs(hashint8extended(s, %(seed)s)) AS h, "
            "%(root)s || %(seed)s || '.' || s AS uid FROM generate_series(1, %(studies)s::bigint) s"
            ") st CROSS JOIN LATERAL generate_series(1, 1 + (h >> 4) %% 3) k "
            "ORDER BY s, k LIMIT %(rows)s").format(image=s["image_occurrence"]),
            {"seed": seed, "persons": persons, "sites": sites, "modalities": modalities,
             "studies": studies, "rows": rows, "root": UID_ROOT})
        count_row = conn.execute(sql.SQL(
            "SELECT count(DISTINCT image_study_uid) FROM {}").format(
            s["image_occurrence"])).fetchone()
        say("generating image_feature rows")
        conn.execute(sql.SQL(
            "INSERT INTO {feature} (image_feature_id, person_id, image_occurrence_id, "
            "image_feature_concept_id, image_feature_type_concept_id, anatomic_site_concept_id, "
            "alg_system) SELECT row_number() OVER (ORDER BY image_occurrence_id), person_id, "
            "image_occurrence_id, %(lesion)s, %(ehr)s, %(lung)s, "
            "'https://example.org/radiomics/1.0' FROM {image} "
            "WHERE image_occurrence_id %% 50 = 0").format(
            feature=s["image_feature"], image=s["image_occurrence"]),
            {"lesion": LESION_CONCEPT[0], "ehr": EHR, "lung": SITE_CONCEPTS["LUNG"][0]})
        features_row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(
            s["image_feature"])).fetchone()
        say("creating keys and indices")
        create_keys(conn, schema, imaging=True, data=data)
        conn.commit()
        conn.autocommit = True
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(s["image_occurrence"]))
        conn.execute(sql.SQL("VACUUM ANALYZE {}").format(s["person"]))
    return BulkSummary(persons=persons, studies=int(count_row[0]) if count_row else 0,
                       rows=rows, features=int(features_row[0]) if features_row else 0,
                       seconds=time.perf_counter() - started)


# -- databases ------------------------------------------------------------------------------
def database_url(server_url: str, name: str) -> str:
    """``server_url`` pointing at database ``name`` (same server, user and options)."""
    parts = urlsplit(server_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database(server_url: str, name: str, *, template: str | None = None) -> str:
    """(Re)create database ``name`` on the server of ``server_url``; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        if template:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)))
        else:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(server_url, name)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))


def identifying_values(url: str, schema: str = "cdm") -> dict[str, Sequence[str]]:
    """Values the catalogue must never store: person_source_value, exact birth dates (ISO) and
    every study and series UID of the source."""
    with psycopg.connect(url) as conn:
        s = {name: sql.Identifier(schema, name) for name in ("person", "image_occurrence")}
        sources = [r[0] for r in conn.execute(sql.SQL(
            "SELECT person_source_value FROM {} WHERE person_source_value <> ''").format(
            s["person"]))]
        births = [r[0] for r in conn.execute(sql.SQL(
            "SELECT make_date(year_of_birth, month_of_birth, day_of_birth)::text FROM {} "
            "WHERE month_of_birth IS NOT NULL AND day_of_birth IS NOT NULL").format(
            s["person"]))]
        uids = [r[0] for r in conn.execute(sql.SQL(
            "SELECT image_study_uid FROM {t} UNION SELECT image_series_uid FROM {t}").format(
            t=s["image_occurrence"]))]
    return {"person_source_value": sources, "birth_date": births, "uid": uids}
