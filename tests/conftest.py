"""Shared fixtures: one real PostgreSQL per session (embedded, or CATALOGUE_TEST_DATABASE_URL),
a migrated template database cloned per test, and the real OpenSearch test cluster (started from
Maven Central once per session, or CATALOGUE_TEST_SEARCH_URL)."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from flask.testing import FlaskClient

from catalogue.config import Config, load_config
from catalogue.runtime import Runtime
from catalogue.store import migrations
from catalogue.store.db import Database
from catalogue.store.embedded import EmbeddedPostgres

_open = FlaskClient.open


def _open_as_a_server_does(self: FlaskClient, *args: Any, buffered: bool = True,
                           **kwargs: Any) -> Any:
    """Test clients read a response and close it before the test sees it, as a WSGI server
    does once it has sent it: what an app does when its response is closed (a cohort answer
    settles its ledger entry then) has happened, as it would have for a real client."""
    return _open(self, *args, buffered=buffered, **kwargs)


FlaskClient.open = _open_as_a_server_does  # type: ignore[method-assign]

TEST_SECRET = "test-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
_counter = itertools.count()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest.fixture(scope="session")
def pg_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a PostgreSQL server for the whole session (admin database)."""
    given = os.environ.get("CATALOGUE_TEST_DATABASE_URL")
    if given:
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="catpg-", dir="/tmp"))
    server = EmbeddedPostgres(folder)
    url = server.start()
    yield url
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def template_db(pg_url: str) -> str:
    """A database migrated once; each test clones it (fast and isolated)."""
    name = f"catalogue_template_{os.getpid()}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    db = Database(_with_database(pg_url, name))
    db.open()
    migrations.upgrade(db)
    db.close()
    return name


@pytest.fixture
def db_url(pg_url: str, template_db: str) -> Iterator[str]:
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield _with_database(pg_url, name)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def empty_db_url(pg_url: str) -> Iterator[str]:
    """A database with no schema at all (for migration tests)."""
    name = f"e_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield _with_database(pg_url, name)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def make_config(tmp_path: Path, db_url: str, **overrides: Any) -> Config:
    values: dict[str, Any] = {
        "database_url": db_url,
        "data_dir": str(tmp_path / "data"),
        "secret_key": TEST_SECRET,
        "env": "test",
        "search_replicas": 1,
    }
    values.update(overrides)
    return load_config(environ={}, **values)


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Config:
    return make_config(tmp_path, db_url)


@pytest.fixture
def runtime(config: Config) -> Iterator[Runtime]:
    rt = Runtime(config).start()
    yield rt
    rt.close()


@pytest.fixture
def app(runtime: Runtime) -> Any:
    from catalogue.api.app import create_app

    application = create_app(runtime=runtime, background_indexer=False)
    application.testing = False  # exercise the real error handlers
    return application


@pytest.fixture
def client(app: Any) -> Any:
    return app.test_client()


# -- OpenSearch -------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def opensearch_urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """URLs of a real multi-node OpenSearch cluster for the session."""
    given = os.environ.get("CATALOGUE_TEST_SEARCH_URL")
    if given:
        yield [u.strip() for u in given.split(",") if u.strip()]
        return
    from catalogue.testing.opensearch_cluster import OpenSearchCluster

    cluster = OpenSearchCluster(nodes=3, data_dir=tmp_path_factory.mktemp("opensearch"))
    cluster.start(timeout=300)
    yield list(cluster.urls)
    cluster.stop()


@pytest.fixture
def opensearch_config(tmp_path: Path, db_url: str, opensearch_urls: list[str]) -> Config:
    prefix = f"t{os.getpid()}-{next(_counter)}-"
    return make_config(
        tmp_path,
        db_url,
        search_url=",".join(opensearch_urls),
        search_index_prefix=prefix,
        search_replicas=1,
    )
