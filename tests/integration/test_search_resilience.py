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
from collections.abc import Callable, Iterator
from contextlib import ExitStack
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
def wait_until(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds:.0f} s waiting until {what}")
        time.sleep(0.05)


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


def test_rebuild_keeps_writes_committed_while_it_runs(runtime: Runtime) -> None:
    """A transaction that began before the rebuild and commits while it runs (a harvest batch,
    a slow save), whose outbox rows the server's indexer applies to the old index before the
    switch, is in the new index too: nothing written during a rebuild is lost from search."""
    rt = runtime
    seed(rt, 30)
    assert rt.indexer is not None and rt.search is not None
    indexer, alias = rt.indexer, rt.search.logical_name("datasets")
    with ExitStack() as writer:
        conn = writer.enter_context(rt.database.transaction())
        repo = DatasetRepository(conn)
        found = repo.find("org-r", "breast-2")
        assert found is not None and found.id is not None
        found.title = {"en": "Breast rescan 2"}
        changed = repo.update(found)
        added = repo.insert(
            Dataset(
                identifier="breast-new",
                organisation_id="org-r",
                title={"en": "Breast rescan new"},
                status=DatasetStatus.PUBLISHED,
                modalities=["MR"],
            )
        )
        assert changed.id and added.id
        enqueue(conn, "dataset", [changed.id, added.id])
        applied: list[int] = []

        def progress(done: int, total: int) -> None:
            if not applied:  # mid-rebuild: the write commits, the server's indexer applies it
                writer.close()
                applied.append(indexer.drain())

        result = indexer.rebuild(progress)
    assert applied == [2]
    assert rt.search.current_index(alias) == result["index"] != result["previous"]
    with rt.database.transaction() as conn:
        in_postgres = {
            r["id"]
            for r in conn.execute(
                "SELECT id::text AS id FROM datasets WHERE status = 'published' "
                "AND title->>'en' LIKE '%%rescan%%'"
            )
        }
    assert in_postgres == {changed.id, added.id}
    page = rt.datasets.search(SYSTEM, text="rescan", size=100)
    assert {d.id for d in page.items} == in_postgres, (
        "a write committed during the rebuild is missing from the new index"
    )
    assert rt.search.count(alias) == 31


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


@pytest.mark.opensearch
def test_background_indexer_catches_up_by_itself_when_the_search_engine_returns(
    private_opensearch: OpenSearchCluster, tmp_path: Path, db_url: str
) -> None:
    """Wired as ``catalogue serve`` is (background indexer on): nobody calls ``drain()`` and
    nobody waits for a green cluster; the indexer retries while the engine is down, keeps every
    outbox row, and applies them once the node is back, shards recovering or not."""
    cluster = private_opensearch
    config = make_config(
        tmp_path,
        db_url,
        search_url=cluster.urls[0],
        search_replicas=0,
        search_index_prefix=f"b{os.getpid()}-",
        indexer_interval=0.2,
    )
    rt = Runtime(config).start(background_indexer=True)
    node_down = False
    try:
        assert rt.search is not None and rt.search.name == "opensearch"
        assert rt.search.current_index(rt.search.logical_name("datasets")), "not created at start"
        indexer = rt.indexer
        assert indexer is not None
        rt.identities.create_organisation(SYSTEM, Organisation("org-o", "Outage", "ES"))
        rt.identities.create_user(SYSTEM, User("", "admin-b", Role.ADMIN))
        token = rt.identities.issue_token(SYSTEM, "admin-b").secret
        with serve(rt) as base:
            created: dict[int, str] = {}
            for i in range(10):
                reply = call(base, "POST", "/api/v1/datasets", _dataset(i), token)
                assert reply.status == 201, reply.raw
                created[i] = reply.body["id"]
            wait_until(
                lambda: indexer.lag()["pending"] == 0,
                30,
                "the background indexer applied the first datasets",
            )
            assert call(base, "GET", "/api/v1/datasets?q=lung").body["total"] == 5

            cluster.stop_node(1)
            node_down = True
            for i in range(10, 13):
                reply = call(base, "POST", "/api/v1/datasets", _dataset(i), token)
                assert reply.status == 201, reply.raw
                created[i] = reply.body["id"]
            rescanned = {**_dataset(2), "modalities": ["MR"]}  # was CT
            reply = call(base, "PUT", f"/api/v1/datasets/{created[2]}", rescanned, token)
            assert reply.status == 200, reply.raw
            reply = call(base, "DELETE", f"/api/v1/datasets/{created[5]}", token=token)
            assert reply.status == 200, reply.raw
            # the indexer has tried (each write wakes it), failed, and kept every row
            wait_until(
                lambda: indexer.last_error is not None or indexer.lag()["pending"] < 5,
                15,
                "the background indexer tried to apply the outbox",
            )
            assert indexer.lag()["pending"] == 5
            assert indexer.last_error == "search_unavailable"
            reply = call(base, "GET", "/api/v1/datasets?q=lung")
            assert reply.status == 503 and reply.body["error"]["code"] == "search_unavailable"

            cluster.start_node(1)
            node_down = False
            wait_until(
                lambda: indexer.lag()["pending"] == 0,
                60,
                "the background indexer drained the outbox after the restart",
            )
            wait_until(
                lambda: call(base, "GET", "/readyz").status == 200, 30, "/readyz is ready again"
            )
            assert indexer.last_error is None

            checks = {
                "q=lung": _published_ids_sql(rt, "lung-%"),
                "modalities=CT": _published_ids_sql(rt, modality="CT"),
                "": _published_ids_sql(rt),
            }
            assert created[2] in checks[""] and created[2] not in checks["modalities=CT"]
            assert created[5] not in checks[""]
            assert len(checks[""]) == 10 - 1 + 3
            for query, want in checks.items():
                assert _all_hit_ids(base, query) == want, query
    finally:
        if node_down:
            cluster.start_node(1)
        rt.close()


@pytest.mark.opensearch
def test_catalogue_started_while_the_search_engine_is_down_indexes_once_it_is_up(
    private_opensearch: OpenSearchCluster, tmp_path: Path, db_url: str
) -> None:
    """``catalogue serve`` started while the engine is unreachable (a fresh deployment where the
    catalogue boots before OpenSearch, or a restart during an outage): it serves writes, answers
    503 for searches, and once the engine is up it creates its indices and applies the outbox
    by itself, without a restart."""
    cluster = private_opensearch
    config = make_config(
        tmp_path,
        db_url,
        search_url=cluster.urls[0],
        search_replicas=0,
        search_index_prefix=f"s{os.getpid()}-",
        indexer_interval=0.2,
    )
    cluster.stop_node(1)
    node_down = True
    rt: Runtime | None = None
    try:
        rt = Runtime(config).start(background_indexer=True)  # as `catalogue serve` does
        indexer = rt.indexer
        assert rt.search is not None and indexer is not None
        rt.identities.create_organisation(SYSTEM, Organisation("org-o", "Outage", "ES"))
        rt.identities.create_user(SYSTEM, User("", "admin-s", Role.ADMIN))
        token = rt.identities.issue_token(SYSTEM, "admin-s").secret
        with serve(rt) as base:
            for i in range(6):
                reply = call(base, "POST", "/api/v1/datasets", _dataset(i), token)
                assert reply.status == 201, reply.raw
            reply = call(base, "GET", "/api/v1/datasets?q=lung")
            assert reply.status == 503 and reply.body["error"]["code"] == "search_unavailable"
            assert call(base, "GET", "/readyz").status == 503

            cluster.start_node(1)
            node_down = False
            reply = call(base, "POST", "/api/v1/datasets", _dataset(6), token)  # wakes the indexer
            assert reply.status == 201, reply.raw
            deadline = time.monotonic() + 30
            while indexer.lag()["pending"] and time.monotonic() < deadline:
                time.sleep(0.1)
            lag = indexer.lag()
            search = call(base, "GET", "/api/v1/datasets?q=lung&size=100")
            ready = call(base, "GET", "/readyz")
            assert lag["pending"] == 0, (
                f"the outbox is not applied once the engine is up: {lag}; search index "
                f"{rt.search.current_index(rt.search.logical_name('datasets'))}; search answers "
                f"{search.status} {search.raw[:200]!r}; /readyz answers {ready.status}"
            )
            assert search.status == 200, search.raw[:300]
            assert {h["id"] for h in search.body["hits"]} == _published_ids_sql(rt, "lung-%")
            assert ready.status == 200, ready.raw[:300]
    finally:
        if node_down:
            cluster.start_node(1)
        if rt is not None:
            rt.close()
