"""The search benchmark on a small corpus: real PostgreSQL, tantivy, the API over HTTP.

Structure and sanity only (no timing thresholds: the machine decides those)."""

from __future__ import annotations

import json
import random

import pytest

from catalogue.bench import search
from catalogue.errors import ValidationError
from catalogue.model.identity import ANONYMOUS
from catalogue.runtime import Runtime
from catalogue.store.datasets import DatasetRepository
from catalogue.testing.app_server import serve

DATASETS = 1_500
QUERIES = 4


def test_small_run_reports_sane_figures(runtime: Runtime) -> None:
    figures = search.run(runtime, datasets=DATASETS, queries=QUERIES, load_batch=700,
                         bulk_batch=1_000)
    assert figures["engine"] == "tantivy" and figures["engine_version"]
    assert figures["datasets"] == DATASETS
    assert 0.8 * DATASETS <= figures["published"] <= 0.95 * DATASETS
    assert figures["queries_per_type"] == QUERIES
    for key in ("postgres_load_datasets_per_s", "index_read_docs_per_s",
                "index_build_docs_per_s", "index_bulk_docs_per_s", "index_total_docs_per_s"):
        assert figures[key] > 0, key
    assert figures["index_bulk_target_docs_per_s"] == 50_000
    assert figures["api_target_p95_ms"] == 25
    assert figures["index_errors"] == 0
    for kind in search.QUERY_TYPES:
        per_type = figures[f"q_{kind}"]
        for key in ("api_p50_ms", "api_p95_ms", "service_p50_ms", "service_p95_ms",
                    "engine_p50_ms", "engine_p95_ms", "ratio_p50", "ratio_p95"):
            assert per_type[key] > 0, (kind, key)
        assert per_type["api_p50_ms"] <= per_type["api_p95_ms"]
        assert per_type["mean_total"] > 0, kind
        # the web search page, timed in the same run against the API
        for key in ("web_p50_ms", "web_p95_ms", "ratio_web_api_p50", "ratio_web_api_p95",
                    "web_html_p50_bytes"):
            assert per_type[key] > 0, (kind, key)
        assert per_type["web_p50_ms"] <= per_type["web_p95_ms"]
        assert isinstance(per_type["web_meets_p95_target"], bool)
    # deep pages: the cursor moves the hits, the total still counts the whole listing
    assert figures["q_deep_page"]["mean_total"] == figures["published"]
    assert figures["deep_pages"] == search.DEEP_PAGES
    assert figures["totals_compared"] == QUERIES * len(search.QUERY_TYPES)
    assert figures["totals_mismatched"] == 0
    for key in ("web_p50_ms", "web_p95_ms", "ratio_web_api_p50", "ratio_web_api_p95"):
        assert figures[key] > 0, key
    assert figures["web_target_p95_ms"] == 100
    assert isinstance(figures["web_meets_p95_target"], bool)
    # page weight: the HTML of a typical search plus the CSS and JS it references, each once
    assert figures["page_weight_query"].startswith("/search?")
    assert figures["page_html_bytes"] > 0
    assert figures["web_html_max_bytes"] >= figures["page_html_bytes"]
    assets = figures["page_assets"]
    assert any(a.endswith(".css") for a in assets) and any(a.endswith(".js") for a in assets)
    assert all(size > 0 for size in assets.values())
    assert figures["page_css_bytes"] + figures["page_js_bytes"] == sum(assets.values())
    assert figures["page_weight_bytes"] == figures["page_html_bytes"] + sum(assets.values())
    assert figures["page_weight_budget_bytes"] == 300_000
    assert figures["page_weight_budget_ratio"] > 0
    assert isinstance(figures["page_weight_meets_budget"], bool)
    json.dumps(figures)  # the CLI writes them as JSON

    # everything is in PostgreSQL and in the fresh (now current) index; the outbox is empty
    assert runtime.search is not None
    alias = runtime.search.logical_name("datasets")
    assert runtime.search.count(alias) == DATASETS
    assert runtime.search.list_indices(alias) == [runtime.search.current_index(alias)]
    with runtime.database.transaction() as conn:
        row = conn.execute("SELECT (SELECT count(*) FROM datasets) AS datasets, "
                           "(SELECT count(*) FROM outbox) AS outbox").fetchone()
        assert row is not None and (row["datasets"], row["outbox"]) == (DATASETS, 0)
        ids = [str(r["id"]) for r in conn.execute(
            "SELECT id FROM datasets WHERE status = 'published' ORDER BY id LIMIT 300")]
        samples = DatasetRepository(conn).get_many(ids)

    # a sample of queries of every type, one by one: the API and the engine agree on totals
    # anonymous callers see published datasets only; deep paging follows next_after
    plan = search._plan(samples, 3, random.Random(3))
    with serve(runtime) as base:
        client = search._Client(base)
        for query in plan:
            body = client.get(query)[1]
            engine = runtime.search.search(alias, search._engine_request(runtime, ANONYMOUS,
                                                                         query))
            assert body["total"] == engine.total, query
            assert body["total"] > 0, query  # values come from published datasets
            assert all(hit["status"] == "published" for hit in body["hits"]), query
        deep = next(q for q in plan if q.kind == "deep_page")
        after, seen = None, []
        for _ in range(search.DEEP_PAGES):
            body = client.get(deep, after)[1]
            seen += [hit["id"] for hit in body["hits"]]
            after = body["next_after"]
        assert len(seen) == len(set(seen)) == search.DEEP_PAGES * search.PAGE_SIZE


def test_refuses_a_catalogue_that_holds_datasets(runtime: Runtime) -> None:
    search.run(runtime, datasets=50, queries=1)
    with pytest.raises(ValidationError, match="empty catalogue"):
        search.run(runtime, datasets=50, queries=1)
