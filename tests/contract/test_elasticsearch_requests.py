"""The Elasticsearch client path, covered at the request level.

No Elasticsearch server can run here, so a local HTTP server records what each backend sends and
answers like Elasticsearch 8 would (including the product header the official client checks).
Both backends must send the same requests: the bodies come from one shared module.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from catalogue.search.backends.opensearch_backend import (
    ElasticsearchBackend,
    OpenSearchBackend,
    detect_engine,
)
from catalogue.search.base import Delete, Upsert
from catalogue.search.mappings import load_definition
from catalogue.search.query import FacetRequest, SearchRequest, Terms

PHYSICAL = "catalogue-datasets-v2-20260101000000000000"


class Recorder(BaseHTTPRequestHandler):
    calls: list[tuple[str, str, Any]] = []
    distribution = "elasticsearch"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, body: Any, status: int = 200) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        body: Any = None
        if raw:
            try:
                body = json.loads(raw)
            except json.JSONDecodeError:
                body = [json.loads(line) for line in raw.splitlines() if line]
        type(self).calls.append((self.command, self.path, body))
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._reply(
                {
                    "version": {"number": "8.15.0", "distribution": self.distribution}
                    if self.distribution == "opensearch"
                    else {"number": "8.15.0"}
                }
            )
        elif path.startswith("/_cluster/health"):
            self._reply({"cluster_name": "fake", "status": "green", "number_of_nodes": 1})
        elif path.startswith("/_alias/"):
            self._reply({PHYSICAL: {"aliases": {"catalogue-datasets": {}}}})
        elif path == "/_bulk":
            items = [
                {"index" if "index" in line else "delete": {"_id": "x", "status": 200}}
                for line in body
                if "index" in line or "delete" in line
            ]
            self._reply({"errors": False, "items": items})
        elif path.endswith("/_search"):
            self._reply(
                {
                    "hits": {
                        "total": {"value": 1, "relation": "eq"},
                        "hits": [{"_id": "d1", "_source": {"id": "d1"}}],
                    },
                    "aggregations": {"modalities": {"doc_count": 1, "values": {
                        "buckets": [{"key": "CT", "doc_count": 1}]}}},
                }
            )
        elif path.endswith("/_count"):
            self._reply({"count": 7})
        elif path.endswith("/_refresh"):
            self._reply({"_shards": {"total": 1, "successful": 1}})
        elif self.command == "PUT":
            self._reply({"acknowledged": True, "index": path.strip("/")})
        elif path == "/_aliases":
            self._reply({"acknowledged": True})
        else:
            self._reply({"error": "unexpected"}, 400)

    do_GET = do_POST = do_PUT = do_DELETE = _handle


@pytest.fixture
def fake() -> Iterator[str]:
    Recorder.calls = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _exercise(backend: Any) -> list[tuple[str, str, Any]]:
    Recorder.calls = []
    definition = load_definition("datasets")
    alias = backend.logical_name("datasets")
    backend.switch_alias(alias, PHYSICAL)
    result = backend.bulk(
        alias,
        [
            Upsert(
                "d1",
                {
                    "id": "d1",
                    "title": "Lung CT",
                    "modalities": ["CT"],
                    "modified": "2024-01-01T00:00:00+00:00",
                },
            ),
            Delete("d2"),
        ],
    )
    assert result.applied == 2 and not result.errors
    backend.refresh(alias)
    assert backend.count(alias, [Terms("status", ("published",))]) == 7
    found = backend.search(
        alias,
        SearchRequest(
            text="Lung", facets=(FacetRequest("modalities", "modalities", 50),),
            filters=(Terms("status", ("published",)),),
            facet_filters=(("countries", Terms("countries", ("ES",))),),
        ),
    )
    assert found.total == 1 and found.ids == ["d1"]
    assert found.facets == {"modalities": [("CT", 1)]}
    assert definition.name == "datasets"
    return list(Recorder.calls)


def test_elasticsearch_backend_sends_the_shared_requests(fake: str, tmp_path: Path) -> None:
    es_calls = _exercise(ElasticsearchBackend([fake]))
    os_calls = _exercise(OpenSearchBackend([fake]))
    assert es_calls == os_calls
    # reads go to the index the alias names (read once), exact or an error
    search_path, search = next((path, body) for method, path, body in es_calls
                               if "/_search" in path)
    assert search_path == f"/{PHYSICAL}/_search?allow_partial_search_results=false"
    assert search["track_total_hits"] is True
    definition = load_definition("datasets")
    assert search["query"]["bool"]["must"] == [
        {"multi_match": {"query": "lung", "fields": list(definition.text_fields)}}
    ]
    # facet selections filter the hits after aggregation; each facet ignores its own selection
    assert search["post_filter"] == {"bool": {"filter": [{"terms": {"countries": ["ES"]}}]}}
    assert search["aggs"] == {"modalities": {
        "filter": {"bool": {"filter": [{"terms": {"countries": ["ES"]}}]}},
        "aggs": {"values": {"terms": {"field": "modalities", "size": 50, "shard_size": 1000}}}}}
    bulk = next(body for method, path, body in es_calls if path == "/_bulk")
    assert bulk[0] == {"index": {"_index": "catalogue-datasets", "_id": "d1"}}
    assert bulk[2] == {"delete": {"_index": "catalogue-datasets", "_id": "d2"}}


def test_engine_detection(fake: str) -> None:
    Recorder.distribution = "elasticsearch"
    assert detect_engine(fake) == "elasticsearch"
    Recorder.distribution = "opensearch"
    try:
        assert detect_engine(fake) == "opensearch"
    finally:
        Recorder.distribution = "elasticsearch"


def test_create_index_body_is_strict_and_versioned(fake: str) -> None:
    backend = ElasticsearchBackend([fake], replicas=2, shards=3)
    name = backend.create_index(load_definition("datasets"))
    assert name.startswith(f"catalogue-datasets-v{load_definition('datasets').version}-")
    _method, path, body = next(c for c in Recorder.calls if c[0] == "PUT")
    assert path == f"/{name}"
    assert body["settings"]["number_of_replicas"] == 2
    assert body["settings"]["number_of_shards"] == 3
    assert body["mappings"]["dynamic"] == "strict"
    assert body["mappings"]["properties"]["title"] == {"type": "text", "analyzer": "catalogue_text"}
    # language fields are stemmed; words are cut like tantivy's simple tokenizer
    assert body["mappings"]["properties"]["text_de"] == {"type": "text",
                                                         "analyzer": "catalogue_german"}
    analysis = body["settings"]["analysis"]
    assert analysis["analyzer"]["catalogue_german"]["filter"] == [
        "lowercase", "asciifolding", "stem_german"]
    assert analysis["tokenizer"]["catalogue_words"]["type"] == "pattern"
    assert body["mappings"]["properties"]["modified_key"] == {"type": "long"}
    assert body["mappings"]["properties"]["modalities"] == {"type": "keyword"}
