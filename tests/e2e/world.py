"""A served catalogue for the web tests: a realistic generated corpus (30 providers in 15
countries, :mod:`catalogue.testing.search_corpus`) plus a few chosen datasets the tests look
for, users of every role with tokens, and record-derived aggregates on one dataset.

Built once per module (``built_world``) in a clone of the migrated template database; the
tests only read, apart from sign-in sessions and tokens they make for themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from catalogue.model.dataset import Dataset, DatasetStatus, Distribution
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.privacy.aggregates import protect
from catalogue.runtime import Runtime
from catalogue.services.codes import unknown_code_warnings
from catalogue.store.datasets import DatasetRepository, content_hash
from catalogue.testing.search_corpus import generate_datasets, providers
from tests.conftest import _with_database, make_config

CORPUS_SIZE = 1200
ACCESS = "http://publications.europa.eu/resource/authority/access-right/"
DATA = Path(__file__).resolve().parents[1] / "data" / "dcat"
#: the dataset the researcher looks for: Provider A (2 datasets) × CT finds only it
SHOWCASE = "lung-adeno"
XSS_TITLE = '<script>window.__xss = 1</script> Lung <img src=x onerror="window.__xss=2"> CT'


@dataclass
class World:
    runtime: Runtime
    tokens: dict[str, str] = field(default_factory=dict)  # role key → bearer token
    ids: dict[str, str] = field(default_factory=dict)  # identifier → dataset id


def _showcase() -> list[Dataset]:
    """The chosen datasets (organisations org-a, org-b, org-c)."""
    lung = Dataset(
        identifier=SHOWCASE, organisation_id="org-a", status=DatasetStatus.PUBLISHED,
        title={"en": "Lung adenocarcinoma CT cohort", "es": "Cohorte TC de adenocarcinoma de "
                                                            "pulmón"},
        description={"en": "Chest CT with radiomics features and segmentations of "
                           "histologically confirmed lung adenocarcinoma."},
        keywords=["radiomics", "lung cancer"], conditions=["snomed:254626006"],
        modalities=["CT"], body_parts=["LUNG"], countries=["ES"], sexes=["female", "male"],
        access_rights=ACCESS + "RESTRICTED",
        licence="https://creativecommons.org/licenses/by-nc/4.0/",
        number_of_individuals=300, number_of_studies=640, min_age=40, max_age=80,
        temporal_start=date(2015, 1, 1), temporal_end=date(2022, 12, 31),
        landing_page="https://imaging.example.es/lung-adeno",
        iri="https://imaging.example.es/datasets/lung-adeno",
        modified=datetime(2024, 3, 1, tzinfo=UTC), issued=datetime(2021, 6, 1, tzinfo=UTC),
        distributions=[Distribution(
            title={"en": "DICOM studies"}, access_url="https://negotiator.example.eu/lung-adeno",
            format="http://publications.europa.eu/resource/authority/file-type/DCM",
            byte_size=48_000_000_000)],
        fields={
            "version": "2.1",
            "publisher": {"name": {"en": "Hospital Universitari La Fe", "es": "Hospital "
                                   "Universitari i Politècnic La Fe"},
                          "homepage": ["https://www.lafe.example.es/"]},
            "contact_points": [{"name": "Imaging data desk",
                                "email": ["imaging-data@lafe.example.es"],
                                "url": ["https://www.lafe.example.es/data"]}],
            "hdab": {"name": {"en": "Spanish Health Data Access Body"},
                     "homepage": ["https://hdab.example.es/"]},
            "legal_basis": ["https://w3id.org/dpv#PublicInterest"],
            "applicable_legislation": ["http://data.europa.eu/eli/reg/2025/327/oj"],
            "provenance": [{"@type": "dct:ProvenanceStatement",
                            "rdfs:label": {"@value": "PACS export of the thoracic oncology "
                                                     "unit, 2015–2022.", "@language": "en"}}],
            "population_coverage": {"en": "Adults with lung adenocarcinoma treated at the "
                                          "hospital."},
            "interoperability_level": "https://cancerimage.eu/ontology/EUCAIM#SPEC1000011",
            "languages": ["http://publications.europa.eu/resource/authority/language/ENG"],
            "distributions": [{"rights": ["https://eucaim.github.io/eucaim_dcat_ap/releases/"
                                          "controlled-vocabularies/access-conditions/"
                                          "#REMOTE_PROCESSING"]}],
        })
    return [
        lung,
        Dataset(identifier="breast-mg", organisation_id="org-b", status=DatasetStatus.PUBLISHED,
                title={"en": "Breast screening mammography"},
                description={"en": "Mammograms and breast MRI of a screening programme."},
                conditions=["icd10:C50.9"], modalities=["MG", "MR"], body_parts=["BREAST"],
                countries=["DE"], number_of_individuals=1200, min_age=50, max_age=70,
                access_rights=ACCESS + "PUBLIC", modified=datetime(2023, 5, 1, tzinfo=UTC)),
        Dataset(identifier="prostate-mr", organisation_id="org-a",
                status=DatasetStatus.PUBLISHED, title={"en": "Prostate MRI"},
                description={"en": "Biparametric prostate MRI."},
                conditions=["snomed:399068003"], modalities=["MR"], body_parts=["PROSTATE"],
                countries=["NL"], number_of_individuals=800,
                modified=datetime(2025, 1, 1, tzinfo=UTC)),
        Dataset(identifier="draft-a", organisation_id="org-a", status=DatasetStatus.DRAFT,
                title={"en": "Unpublished liver CT of provider A"}, modalities=["CT"],
                countries=["ES"]),
        Dataset(identifier="pet-local", organisation_id="org-c", status=DatasetStatus.PUBLISHED,
                title={"en": "Whole-body PET/CT of lymphoma"}, conditions=["local:ONC-7"],
                modalities=["PT", "CT"], body_parts=["WHOLEBODY"], countries=["ES"],
                number_of_individuals=90),
        Dataset(identifier="xss", organisation_id="org-c", status=DatasetStatus.PUBLISHED,
                title={"en": XSS_TITLE},
                description={"en": 'Lung </script><script>window.__xss=3</script> & "quotes"'},
                keywords=["<b>bold</b>"], modalities=["CT"], countries=["ES"]),
    ]


def _set_aggregates(rt: Runtime, dataset_id: str, counts: dict[str, Any]) -> None:
    with rt.database.transaction() as conn:
        conn.execute("UPDATE datasets SET aggregates = %s WHERE id = %s",
                     (Jsonb(protect(counts, source="fhir")), dataset_id))
        conn.execute("INSERT INTO outbox (entity, entity_id) VALUES ('dataset', %s)",
                     (dataset_id,))


LUNG_COUNTS: dict[str, Any] = {
    "subjects": 300, "studies": 640,
    "modalities": {"CT": 296, "PT": 41, "MR": 4},  # MR < 10: not published at all
    "body_parts": {"CHEST": 280, "LUNG": 140},
    "manufacturers": {"SIEMENS": 180, "GE MEDICAL SYSTEMS": 110, "Philips": 6},
    "sexes": {"female": 130, "male": 170},
    "age_bands": {"40": 12, "45": 25, "50": 41, "55": 60, "60": 72, "65": 50, "70": 31,
                  "75": 7, "80": 2},
    "study_years": {"2015": 40, "2018": 300, "2022": 300},
}
SMALL_COUNTS: dict[str, Any] = {  # a dataset with 7 subjects: every cell is suppressed
    "subjects": 7, "studies": 9, "modalities": {"PT": 7, "CT": 7}, "body_parts": {},
    "manufacturers": {}, "sexes": {"male": 7}, "age_bands": {"60": 7}, "study_years": {},
}


def populate(rt: Runtime, corpus_size: int = CORPUS_SIZE) -> World:
    """Organisations, users, tokens, the corpus and the chosen datasets, indexed."""
    world = World(rt)
    ids = rt.identities
    provs = providers(seed=3)
    for prov in provs:
        ids.create_organisation(SYSTEM, Organisation(prov.id, prov.name, prov.country))
    for org, name, country in (("org-a", "Provider A", "ES"), ("org-b", "Provider B", "DE"),
                               ("org-c", "Provider C", "ES")):
        ids.create_organisation(SYSTEM, Organisation(org, name, country))
    for key, user in {"admin": User("", "admin1", Role.ADMIN),
                      "provider_a": User("", "prov-a", Role.PROVIDER, "org-a"),
                      "provider_b": User("", "prov-b", Role.PROVIDER, "org-b"),
                      "researcher": User("", "res1", Role.RESEARCHER)}.items():
        ids.create_user(SYSTEM, user)
        world.tokens[key] = ids.issue_token(SYSTEM, user.username, "web tests").secret
    corpus = list(generate_datasets(corpus_size, seed=3, provs=provs))
    for ds in corpus:
        ds.validation = unknown_code_warnings(ds)
        ds.content_hash = content_hash(ds)
    with rt.database.transaction() as conn:
        DatasetRepository(conn).write_many(corpus, [], seen_run=None)
    for ds in _showcase():
        saved, _ = rt.datasets.save(SYSTEM, ds)
        world.ids[ds.identifier] = str(saved.id)
    # a provider's draft uploaded as EUCAIM-DCAT-AP JSON-LD (violations: a draft it stays)
    draft, _ = rt.datasets.save_rdf(
        SYSTEM, "org-b", (DATA / "eucaim" / "eucaim-glioblastoma.jsonld").read_bytes(),
        "application/ld+json", DatasetStatus.DRAFT)
    world.ids["draft-b"] = str(draft.id)
    _set_aggregates(rt, world.ids[SHOWCASE], LUNG_COUNTS)
    _set_aggregates(rt, world.ids["pet-local"], SMALL_COUNTS)
    assert rt.indexer is not None
    rt.indexer.rebuild()
    rt.indexer.drain()
    return world


@contextmanager
def built_world(pg_url: str, template_db: str, folder: Path, name: str,
                corpus_size: int = CORPUS_SIZE, **settings: Any) -> Iterator[World]:
    """A started runtime on a fresh clone of the template database, populated."""
    database = f"{name}_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}" TEMPLATE "{template_db}"')
    config = make_config(folder, _with_database(pg_url, database), **settings)
    rt = Runtime(config).start()
    try:
        yield populate(rt, corpus_size)
    finally:
        rt.close()
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
