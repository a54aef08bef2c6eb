"""Fixtures of the attack suite: a database per module (staged once, attacked by many fresh
researchers), and the measured figures in the terminal summary."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from catalogue.config import Config
from tests.attacks import FIGURES
from tests.conftest import make_config

_databases = itertools.count()


@pytest.fixture(scope="module")
def module_config(pg_url: str, template_db: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """A fresh migrated database and data folder (tantivy) shared by one test module."""
    name = f"attack_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    parts = urlsplit(pg_url)
    url = urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))
    yield make_config(tmp_path_factory.mktemp("attack"), url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("cohort attack figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
