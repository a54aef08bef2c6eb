"""Helpers shared by the study-level ingest tests (FHIR, OMOP, DICOMweb)."""

from __future__ import annotations

import json

from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM
from catalogue.runtime import Runtime


def make_dataset(rt: Runtime, identifier: str, title: str, organisation_id: str = "org-a") -> str:
    """A published dataset of ``organisation_id`` (which must exist); returns its id."""
    ds, _ = rt.datasets.save(SYSTEM, Dataset(
        identifier=identifier, organisation_id=organisation_id, title={"en": title},
        status=DatasetStatus.PUBLISHED))
    assert ds.id is not None
    return ds.id


def database_text(rt: Runtime) -> str:
    """Every value of every table in the catalogue's database, as text (privacy scans)."""
    chunks = []
    with rt.database.transaction() as conn:
        tables = [r["table_name"] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        for table in tables:
            chunks.extend(json.dumps(row, default=str, ensure_ascii=False)
                          for row in conn.execute(f'SELECT * FROM "{table}"'))
    return "\n".join(chunks)
