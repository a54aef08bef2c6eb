"""Validators shared by the SHACL tests (loading the shapes takes about half a second)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import Graph

from catalogue.dcat.validation import Issue, Validator, get_validator

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"


def load(relative: str) -> Graph:
    """A test document from tests/data/dcat."""
    return Graph().parse(DATA / relative)


def violations(issues: list[Issue]) -> list[Issue]:
    return [i for i in issues if i.severity == "violation"]


def find(issues: list[Issue], path: str, severity: str = "violation") -> list[Issue]:
    return [i for i in issues if i.path == path and i.severity == severity]


@pytest.fixture(scope="session")
def validator() -> Validator:
    """The default profiles: DCAT-AP 3, HealthDCAT-AP, EUCAIM-DCAT-AP v2."""
    return get_validator()


@pytest.fixture(scope="session")
def healthri_validator() -> Validator:
    """DCAT-AP 3 and the Health-RI core shapes, for Health-RI's own test documents."""
    return get_validator(("dcat-ap-3", "health-ri"))


@pytest.fixture(scope="session")
def dcat_ap_validator() -> Validator:
    return get_validator(("dcat-ap-3",))
