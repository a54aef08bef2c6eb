"""Search resilience with real components: the real API served over HTTP (waitress), real
PostgreSQL, the real search engines.

* ``catalogue index rebuild`` (the real command, in its own process, twice) while clients search
  continuously: not one failed request, every total right, and the alias moves to a new index.
  Embedded tantivy and OpenSearch (the session cluster: nothing in it is stopped).
* The search engine stops (a private single-node OpenSearch, never the shared cluster): writes
  still commit and queue in the outbox, searches answer 503 with the JSON error, ``/readyz`` is
  not ready; after the restart the outbox drains and the index equals PostgreSQL exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from catalogue.config import SETTINGS, Config
from catalogue.errors import SearchUnavailable
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.store.audit import enqueue
from catalogue.store.datasets import DatasetRepository, content_hash
from catalogue.testing.app_server import serve
from catalogue.testing.opensearch_cluster import OpenSearchCluster
from tests.conftest import make_config

REPO = Path(__file__).resolve().parents[2]
SEARCH_MESSAGE = "search engine"


# -- helpers ------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None,
         timeout: float = 30.0) -> Reply:
    """One HTTP request (a new connection each time); non-2xx answers are returned, not
    raised."""
    headers = {"Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw, status, hdrs = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw, status, hdrs = err.read(), err.code, dict(err.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Reply(status, parsed, raw, {k.lower(): v for k, v in hdrs.items()})


def cli_env(config: Config) -> dict[str, str]:
    """Environment for a `catalogue` process using the same database, data folder and index."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CATALOGUE_")}
    wanted = ("database_url", "data_dir", "secret_key", "env", "search_url",
              "search_index_prefix", "search_replicas")
    for setting in SETTINGS:
        value = getattr(config, setting.name)
        if setting.name in wanted and value not in (None, ""):
            env[setting.env] = str(value)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


_SWITCHED = re.compile(r"switched to (\S+) \((\d+) documents; previous: (\S+)\)")


def cli_rebuild(config: Config) -> dict[str, dict[str, Any]]:
    """Run ``catalogue index rebuild`` (every index) as its own process; {index name: result}."""
    proc = subprocess.run(
        [sys.executable, "-m", "catalogue.cli", "index", "rebuild"],
        env=cli_env(config), cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, f"index rebuild failed:\n{proc.stdout}\n{proc.stderr}"
    found = _SWITCHED.findall(proc.stdout)
    assert len(found) == 2, proc.stdout  # datasets, subjects
    return {
        name: {"index": physical, "documents": int(docs), "previous": previous}
        for (physical, docs, previous), name in zip(found, ("datasets", "subjects"), strict=True)
    }


def seed(rt: Runtime, count: int) -> dict[str, set[str]]:
    """``count`` datasets written like a bulk harvest (COPY + outbox) and indexed; returns the
    published ids per query key."""
    rt.identities.create_organisation(SYSTEM, Organisation("org-r", "Resilience", "ES"))
    datasets: list[Dataset] = []
    for i in range(count):
        lung = i % 2 == 1
        ds = Dataset(
            identifier=f"{'lung' if lung else 'breast'}-{i}",
            organisation_id="org-r",
            title={"en": f"Lung cohort {i}" if lung else f"Breast screening {i}"},
            description={"en": "Imaging collection for the resilience test."},
            status=DatasetStatus.DRAFT if i % 5 == 0 else DatasetStatus.PUBLISHED,
            modalities=["CT"] if i % 3 else ["MR"],
        )
        ds.content_hash = content_hash(ds)
        datasets.append(ds)
    with rt.database.transaction() as conn:
        DatasetRepository(conn).write_many(datasets, [])
        enqueue(conn, "dataset", [ds.id for ds in datasets if ds.id])
    assert rt.indexer is not None
    assert rt.indexer.drain() == count
    published = [ds for ds in datasets if ds.status == DatasetStatus.PUBLISHED]
    return {
        "all": {ds.id for ds in published if ds.id},
        "lung": {ds.id for ds in published if ds.id and ds.identifier.startswith("lung-")},
        "ct": {ds.id for ds in published if ds.id and ds.modalities == ["CT"]},
    }


QUERIES = {
    "lung": "q=lung&size=20",
    "ct": "modalities=CT&size=20",
    "lung+ct": "q=lung&modalities=CT&size=20",
    "all": "size=20",
}


# -- 1. rebuild under continuous queries --------------------------------------------------------
@pytest.mark.parametrize("engine", ["tantivy", "opensearch"])
def test_rebuild_under_continuous_queries_fails_no_request(
    engine: str, request: pytest.FixtureRequest
) -> None:
    config: Config = request.getfixturevalue("config" if engine == "tantivy"
                                             else "opensearch_config")
    rt = Runtime(config).start()
    try:
        assert rt.search is not None and rt.search.name == engine
        ids = seed(rt, 300)
        expected_ids = {**ids, "lung+ct": ids["lung"] & ids["ct"]}
        expected = {key: len(v) for key, v in expected_ids.items()}
        assert expected == {"lung": 120, "ct": 160, "lung+ct": 80, "all": 240}
        alias = rt.search.logical_name("datasets")
        original = rt.search.current_index(alias)
        assert original is not None

        with serve(rt) as base:
            for key, query in QUERIES.items():  # right before any rebuild
                reply = call(base, "GET", f"/api/v1/datasets?{query}")
                assert reply.status == 200 and reply.body["total"] == expected[key], reply.raw

            stop = threading.Event()
            lock = threading.Lock()
            log: list[tuple[float, float, str, int, Any]] = []  # start, end, key, status, total
            failures: list[str] = []

            def client(offset: int) -> None:
                keys = list(QUERIES)
                n = offset
                while not stop.is_set():
                    key = keys[n % len(keys)]
                    n += 1
                    started = time.monotonic()
                    try:
                        reply = call(base, "GET", f"/api/v1/datasets?{QUERIES[key]}", timeout=20)
                    except Exception as exc:  # a refused/reset connection is a failure too
                        with lock:
                            failures.append(f"{key}: {type(exc).__name__}: {exc}")
                        continue
                    total = reply.body.get("total") if isinstance(reply.body, dict) else None
                    hits = reply.body.get("hits", []) if isinstance(reply.body, dict) else []
                    with lock:
                        log.append((started, time.monotonic(), key, reply.status, total))
                        if reply.status != 200 or total != expected[key]:
                            failures.append(f"{key}: HTTP {reply.status} total {total} "
                                            f"(want {expected[key]}): {reply.raw[:160]!r}")
                        elif not {h["id"] for h in hits} <= expected_ids[key]:
                            failures.append(f"{key}: hits outside the expected set")

            clients = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(3)]
            for t in clients:
                t.start()
            try:
                while len(log) < 10:  # clients are up and running before the first rebuild
                    time.sleep(0.05)
                windows, results = [], []
                for _ in range(2):
                    began = time.monotonic()
                    results.append(cli_rebuild(config))
                    windows.append((began, time.monotonic()))
                time.sleep(0.3)  # a few queries against the final index as well
            finally:
                stop.set()
                for t in clients:
                    t.join(30)

        assert not failures, f"{len(failures)} of {len(log)} requests failed: {failures[:5]}"
        for began, ended in windows:
            during = [e for e in log if e[0] >= began and e[1] <= ended]
            assert len(during) >= 5, "too few searches ran while the rebuild did"
        first, second = results[0]["datasets"], results[1]["datasets"]
        assert first["previous"] == original and first["documents"] == 300
        assert second["previous"] == first["index"] and second["documents"] == 300
        assert len({original, first["index"], second["index"]}) == 3
        assert rt.search.current_index(alias) == second["index"]
        assert rt.search.list_indices(alias) == [second["index"]]  # old ones dropped
        assert rt.search.count(alias) == 300  # every status is indexed; queries filter
    finally:
        rt.close()


# -- 2. the search engine stops -----------------------------------------------------------------
@pytest.fixture(scope="module")
def private_opensearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchCluster]:
    """A single-node cluster of this module's own: its node is stopped on purpose."""
    cluster = OpenSearchCluster(nodes=1, data_dir=tmp_path_factory.mktemp("private-opensearch"),
                                cluster_name="catalogue-resilience")
    cluster.start(timeout=240)
    yield cluster
    cluster.stop()


def _published_ids_sql(rt: Runtime, identifier_like: str = "%",
                       modality: str | None = None) -> set[str]:
    sql = ("SELECT id::text AS id FROM datasets WHERE status = 'published' "
           "AND identifier LIKE %s")
    params: list[Any] = [identifier_like]
    if modality:
        sql += " AND %s = ANY(modalities)"
        params.append(modality)
    with rt.database.transaction() as conn:
        return {r["id"] for r in conn.execute(sql, params)}


def _all_hit_ids(base: str, query: str) -> set[str]:
    ids: set[str] = set()
    page = 1
    while True:
        reply = call(base, "GET", f"/api/v1/datasets?{query}&size=100&page={page}")
        assert reply.status == 200, reply.raw
        ids |= {h["id"] for h in reply.body["hits"]}
        if page * 100 >= reply.body["total"]:
            assert len(ids) == reply.body["total"]
            return ids
        page += 1


def _dataset(i: int, status: str = "published") -> dict[str, Any]:
    lung = i % 2 == 1
    return {
        "identifier": f"{'lung' if lung else 'breast'}-{i}",
        "organisation_id": "org-o",
        "status": status,
        "title": {"en": f"Lung cohort {i}" if lung else f"Breast screening {i}"},
        "modalities": ["CT"] if i % 3 else ["MR"],
    }


def test_search_engine_stopped_writes_queue_and_searches_answer_503(
    private_opensearch: OpenSearchCluster, tmp_path: Path, db_url: str
) -> None:
    cluster = private_opensearch
    url = cluster.urls[0]
    config = make_config(tmp_path, db_url, search_url=url, search_replicas=0,
                         search_index_prefix=f"r{os.getpid()}-", search_timeout=3.0)
    rt = Runtime(config).start()
    node_down = False
    try:
        assert rt.search is not None and rt.search.name == "opensearch"
        assert rt.indexer is not None
        rt.identities.create_organisation(SYSTEM, Organisation("org-o", "Outage", "ES"))
        rt.identities.create_user(SYSTEM, User("", "admin-o", Role.ADMIN))
        token = rt.identities.issue_token(SYSTEM, "admin-o").secret
        with serve(rt) as base:
            created: dict[int, str] = {}
            for i in range(20):
                reply = call(base, "POST", "/api/v1/datasets",
                             _dataset(i, "draft" if i % 5 == 0 else "published"), token)
                assert reply.status == 201, reply.raw
                created[i] = reply.body["id"]
            assert rt.indexer.drain() == 20
            assert call(base, "GET", "/api/v1/datasets?q=lung").body["total"] == 8
            assert call(base, "GET", "/readyz").status == 200

            cluster.stop_node(1)
            node_down = True

            # writes commit in PostgreSQL and queue in the outbox
            for i in range(20, 24):
                reply = call(base, "POST", "/api/v1/datasets", _dataset(i), token)
                assert reply.status == 201, reply.raw
                created[i] = reply.body["id"]
            reply = call(base, "DELETE", f"/api/v1/datasets/{created[1]}", token=token)
            assert reply.status == 200 and reply.body["status"] == "withdrawn", reply.raw
            saved, was_created = rt.datasets.save(SYSTEM, Dataset(
                identifier="lung-3", organisation_id="org-o", title={"en": "Lung cohort 3"},
                status=DatasetStatus.DRAFT, modalities=["CT"]))
            assert not was_created and saved.status == DatasetStatus.DRAFT
            assert rt.indexer.lag()["pending"] == 6
            assert call(base, "GET", f"/api/v1/datasets/{created[21]}").status == 200

            # searches answer 503 with the JSON error naming the search engine
            for query in ("q=lung", "modalities=CT", ""):
                reply = call(base, "GET", f"/api/v1/datasets?{query}")
                assert reply.status == 503, (query, reply.status, reply.raw[:500])
                assert reply.headers.get("content-type", "").startswith("application/json")
                error = reply.body["error"]
                assert error["status"] == 503 and error["code"] == "search_unavailable"
                assert SEARCH_MESSAGE in error["message"].lower(), error
                assert error["request_id"]
                assert "Traceback" not in reply.raw.decode() and url not in reply.raw.decode()
            ready = call(base, "GET", "/readyz")
            assert ready.status == 503, ready.raw
            details = ready.body["details"]
            assert details["store"]["ok"] is True and details["search"]["ok"] is False
            assert details["indexer"]["pending"] == 6

            # applying the outbox fails while the engine is down, and loses nothing
            with pytest.raises(SearchUnavailable):
                rt.indexer.drain(max_seconds=10)
            assert rt.indexer.lag()["pending"] == 6

            cluster.start_node(1)
            node_down = False
            cluster.wait_for_status("green", timeout=60)
            assert rt.indexer.drain() == 6
            assert rt.indexer.lag()["pending"] == 0
            assert call(base, "GET", "/readyz").status == 200

            # the index now equals PostgreSQL exactly
            checks = {
                "q=lung": _published_ids_sql(rt, "lung-%"),
                "modalities=CT": _published_ids_sql(rt, modality="CT"),
                "q=lung&modalities=CT": _published_ids_sql(rt, "lung-%", "CT"),
                "": _published_ids_sql(rt),
            }
            assert len(checks[""]) == 16 - 2 + 4  # 16 published, 2 unpublished, 4 new
            assert created[1] not in checks[""] and created[3] not in checks[""]
            for query, want in checks.items():
                assert _all_hit_ids(base, query) == want, query
    finally:
        if node_down:
            cluster.start_node(1)
        rt.close()
