from __future__ import annotations

from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
