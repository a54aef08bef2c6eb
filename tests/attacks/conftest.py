"""Fixtures of the attack suite: a database per module (staged once, attacked by many fresh
researchers), and the measured figures in the terminal summary."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from catalogue.config import Config
from catalogue.runtime import Runtime
from catalogue.testing.app_server import serve
from tests.attacks import FIGURES, Api, World
from tests.conftest import _with_database, make_config
from tests.integration.cohorts import stage

_databases = itertools.count()


@pytest.fixture(scope="module")
def module_config(pg_url: str, template_db: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[Config]:
    """A fresh migrated database and data folder (tantivy) shared by one test module."""
    name = f"attack_{os.getpid()}_{next(_databases)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield make_config(tmp_path_factory.mktemp("attack"), _with_database(pg_url, name))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def world(module_config: Config) -> Iterator[World]:
    rt = Runtime(module_config).start()
    try:
        staged = stage(rt)
        with serve(rt) as base:
            yield World(rt, Api(base, rt), staged)
    finally:
        rt.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if FIGURES:
        terminalreporter.section("cohort attack figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
