"""One node of a three-node OpenSearch cluster stops while researchers search.

Real parts: a private three-node OpenSearch 2.19 cluster (nodes in one JVM, started from Maven
Central; never the session's cluster, since a node of it is stopped on purpose), the catalogue
configured with every node's URL and one replica per shard, the real app over HTTP, client
threads searching continuously. One node is stopped, in turn the first node in the catalogue's
URL list (which also holds primaries and is the elected master when the cluster formed) and the
second one: not one search fails
and every total stays right, writes made meanwhile reach the index (the cluster is yellow, not
red), and after the node rejoins and the cluster is green again the index equals PostgreSQL.
Failover is the OpenSearch client's: a request refused by the stopped node marks that
connection dead and is retried once on the next live node (``max_retries=1`` in
``catalogue/search/backends/opensearch_backend.py``), so no request fails.
The search engine entirely stopped is tested in tests/integration/test_search_resilience.py.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.testing.app_server import serve
from catalogue.testing.opensearch_cluster import OpenSearchCluster
from tests.conftest import make_config
from tests.integration.test_search_resilience import _all_hit_ids, _published_ids_sql, call

pytestmark = [pytest.mark.opensearch, pytest.mark.slow]


@pytest.fixture(scope="module")
def three_nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchCluster]:
    cluster = OpenSearchCluster(nodes=3, data_dir=tmp_path_factory.mktemp("faults-opensearch"),
                                cluster_name="catalogue-faults")
    cluster.start(timeout=300)
    yield cluster
    cluster.stop()


def _dataset(i: int) -> dict[str, Any]:
    lung = i % 2 == 1
    return {"identifier": f"{'lung' if lung else 'breast'}-{i}", "organisation_id": "org-n",
            "status": "published",
            "title": {"en": f"Lung cohort {i}" if lung else f"Breast screening {i}"},
            "modalities": ["CT"] if i % 3 else ["MR"]}


@pytest.mark.parametrize("node", [1, 2], ids=["first-url-node", "second-node"])
def test_one_node_down_reads_continue_from_replicas(three_nodes: OpenSearchCluster, node: int,
                                                    tmp_path: Path, db_url: str) -> None:
    cluster = three_nodes
    cluster.wait_for_status("green", timeout=180)  # after the previous case's restart
    config = make_config(tmp_path, db_url, search_url=",".join(cluster.urls),
                         search_replicas=1, search_index_prefix=f"f{os.getpid()}-{node}-",
                         search_timeout=10.0)
    rt = Runtime(config).start()
    node_down = False
    try:
        assert rt.search is not None and rt.search.name == "opensearch"
        assert rt.indexer is not None
        rt.identities.create_organisation(SYSTEM, Organisation("org-n", "Nodes", "ES"))
        rt.identities.create_user(SYSTEM, User("", "admin-n", Role.ADMIN))
        token = rt.identities.issue_token(SYSTEM, "admin-n").secret
        with serve(rt, threads=8) as base:
            for i in range(40):
                assert call(base, "POST", "/api/v1/datasets", _dataset(i), token).status == 201
            assert rt.indexer.drain() == 40
            cluster.wait_for_status("green", timeout=120)
            expected = {"q=lung": 20, "modalities=CT": 26, "q=lung&modalities=CT": 13}
            for query, total in expected.items():
                assert call(base, "GET", f"/api/v1/datasets?{query}").body["total"] == total

            outcomes: Counter[str] = Counter()
            wrong: list[str] = []
            stop = threading.Event()

            def client(query: str, total: int) -> None:
                while not stop.is_set():
                    try:
                        reply = call(base, "GET", f"/api/v1/datasets?{query}", timeout=60)
                    except Exception as exc:
                        wrong.append(f"{query}: no answer: {exc}")
                        continue
                    outcomes[str(reply.status)] += 1
                    if reply.status != 200:
                        wrong.append(f"{query}: {reply.status} {reply.raw[:200]!r}")
                    elif reply.body["total"] != total:
                        wrong.append(f"{query}: total {reply.body['total']} != {total}")
                    time.sleep(0.01)

            threads = [threading.Thread(target=client, args=item, daemon=True)
                       for item in expected.items()]
            for t in threads:
                t.start()
            time.sleep(1.0)
            before = sum(outcomes.values())
            cluster.stop_node(node)  # node 1: the first URL the catalogue knows
            node_down = True
            health = cluster.health(cluster.running_urls[0])
            assert health["number_of_nodes"] == 2 and health["status"] in ("yellow", "green")
            time.sleep(3.0)
            during = sum(outcomes.values()) - before
            stop.set()
            for t in threads:
                t.join(70)
            assert not wrong, wrong[:5]
            assert during >= 20, outcomes  # the searches really ran while the node was down

            # writes while the node is down reach the index
            for i in range(40, 46):
                assert call(base, "POST", "/api/v1/datasets", _dataset(i), token).status == 201
            assert rt.indexer.drain() == 6
            assert _all_hit_ids(base, "q=lung") == _published_ids_sql(rt, "lung-%")
            assert _all_hit_ids(base, "") == _published_ids_sql(rt)

            cluster.start_node(node)
            node_down = False
            cluster.wait_for_status("green", timeout=180)
            for query in ("q=lung", "modalities=CT", "q=lung&modalities=CT", ""):
                like = "lung-%" if "lung" in query else "%"
                want = _published_ids_sql(rt, like, "CT" if "CT" in query else None)
                assert _all_hit_ids(base, query) == want, query
            assert len(_published_ids_sql(rt)) == 46
    finally:
        if node_down:
            cluster.start_node(node)
        rt.close()
