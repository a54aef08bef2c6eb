"""`GET /metrics` (Prometheus text format) and the structured access log, against real
PostgreSQL and the embedded search engine. The exposition is parsed with prometheus_client's own
parser, as Prometheus would read it."""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from catalogue.api.app import create_app
from catalogue.logs import JsonFormatter
from catalogue.model.identity import SYSTEM, Identity, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.store.embedded import EmbeddedPostgres
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES
from tests.conftest import make_config
from tests.integration.test_api_auth import auth


def scrape(client: Any, token: str | None = None) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                          float]:
    r = client.get("/metrics", headers=auth(token) if token else {})
    assert r.status_code == 200, r.data
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    out = {}
    for family in text_string_to_metric_families(r.get_data(as_text=True)):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def turtle(i: int) -> bytes:
    _, text = record(i)
    return (PREFIXES + EUCAIM_PREFIX + text.replace("@@BASE@@", "https://p.example")).encode()


def test_request_latency_is_labelled_by_route_template(client: Any, runtime: Runtime) -> None:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    for _ in range(3):
        assert client.get("/api/v1/datasets?q=lung").status_code == 200
    assert client.get("/api/v1/datasets/0b4f1d6e-0000-4000-8000-000000000001").status_code == 404
    assert client.get("/api/v1/datasets/another-id").status_code == 404
    assert client.get("/no/such/page").status_code == 404
    samples = scrape(client)
    count = "catalogue_http_request_duration_seconds_count"
    assert value(samples, count, method="GET", route="/api/v1/datasets", status="200") == 3
    # two concrete ids, one series: the template, never the path
    assert value(samples, count, method="GET", route="/api/v1/datasets/<dataset_id>",
                 status="404") == 2
    assert value(samples, count, method="GET", route="(unmatched)", status="404") == 1
    assert not any("another-id" in str(key) for key in samples)
    buckets = [v for (name, labels), v in samples.items()
               if name == "catalogue_http_request_duration_seconds_bucket"
               and ("route", "/api/v1/datasets") in labels and ("status", "200") in labels]
    assert buckets and max(buckets) == 3  # the +Inf bucket holds every observation


def test_harvest_outcomes_outbox_lag_and_datasets(client: Any, runtime: Runtime) -> None:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    with runtime.database.transaction() as conn:
        for kind, status, counts, dry in (
                ("dcat", "completed", {"created": 5, "updated": 1, "failed": 2}, False),
                ("dcat", "completed", {"created": 1, "unchanged": 6}, False),
                ("dcat", "failed", {"created": 3}, False),
                ("fhir", "completed", {"created": 40}, False),
                ("dcat", "completed", {"created": 99}, True),     # a dry run: not counted
                ("omop", "running", {"created": 7}, False)):      # still running
            conn.execute("INSERT INTO harvest_runs (organisation_id, kind, status, counts, "
                         "dry_run, pid) VALUES ('org-a', %s, %s, %s::jsonb, %s, %s)",
                         (kind, status, json.dumps(counts), dry, 0))
    runtime.identities.create_user(SYSTEM, User("", "prov", Role.PROVIDER, "org-a"))
    token = runtime.identities.issue_token(SYSTEM, "prov").secret
    for i in range(2):  # the app's background indexer is off: the outbox holds the changes
        r = client.post("/api/v1/datasets?organisation_id=org-a&status=published",
                        data=turtle(i), headers={**auth(token), "Content-Type": "text/turtle"})
        assert r.status_code in (200, 201), r.json
    samples = scrape(client)
    assert value(samples, "catalogue_harvest_runs_total", kind="dcat", status="completed") == 2
    assert value(samples, "catalogue_harvest_runs_total", kind="dcat", status="failed") == 1
    assert value(samples, "catalogue_harvest_runs_total", kind="fhir", status="completed") == 1
    assert value(samples, "catalogue_harvest_runs_running", kind="omop") == 1
    assert value(samples, "catalogue_harvest_records_total", kind="dcat", outcome="created") == 9
    assert value(samples, "catalogue_harvest_records_total", kind="dcat", outcome="failed") == 2
    assert value(samples, "catalogue_harvest_records_total", kind="omop", outcome="created") == 0
    assert value(samples, "catalogue_outbox_pending") >= 2
    assert value(samples, "catalogue_outbox_oldest_seconds") > 0
    assert value(samples, "catalogue_datasets", status="published") == 2
    assert value(samples, "catalogue_database_up") == 1
    assert value(samples, "catalogue_search_up") == 1
    assert runtime.indexer is not None
    runtime.indexer.drain()
    drained = scrape(client)
    assert value(drained, "catalogue_outbox_pending") == 0
    assert value(drained, "catalogue_outbox_oldest_seconds") == 0


def test_budget_refusals_are_counted(client: Any, runtime: Runtime) -> None:
    runtime.cohorts.policy = dataclasses.replace(runtime.cohorts.policy, epsilon=0.2, budget=0.3)
    user = runtime.identities.create_user(SYSTEM, User("", "rita", Role.RESEARCHER))
    who = Identity(user_id=user.id, username="rita", role=Role.RESEARCHER)
    assert value(scrape(client), "catalogue_cohort_budget_refusals_total") == 0
    runtime.cohorts.count(who, {"criteria": {"all_of": [{"modality": ["CT"]}]}})
    runtime.cohorts.count(who, {"criteria": {"all_of": [{"modality": ["CT"]}]}})  # a repeat
    refused = 0
    for modality in ("MR", "PT"):  # 0.2 + 0.2 > 0.3: both refused
        with pytest.raises(Exception, match="budget is exhausted"):
            runtime.cohorts.count(who, {"criteria": {"all_of": [{"modality": [modality]}]}})
        refused += 1
    samples = scrape(client)
    assert value(samples, "catalogue_cohort_budget_refusals_total") == refused == 2
    assert value(samples, "catalogue_cohort_questions_total", outcome="refused") == 2
    assert value(samples, "catalogue_cohort_questions_total", outcome="answered") == 1
    assert value(samples, "catalogue_cohort_questions_total", outcome="repeated") == 1


def test_export_page_cache_reads_and_writes_are_counted(client: Any, runtime: Runtime) -> None:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    runtime.identities.create_user(SYSTEM, User("", "prov", Role.PROVIDER, "org-a"))
    token = runtime.identities.issue_token(SYSTEM, "prov").secret
    for i in range(3):
        r = client.post("/api/v1/datasets?organisation_id=org-a&status=published",
                        data=turtle(i), headers={**auth(token), "Content-Type": "text/turtle"})
        assert r.status_code in (200, 201), r.json
    reads, writes = ("catalogue_export_page_cache_reads_total",
                     "catalogue_export_page_cache_writes_total")
    before = scrape(client)
    assert value(before, reads, outcome="hit") == value(before, reads, outcome="miss") == 0
    url = "/dcat/catalog?format=nt&page_size=10"
    assert client.get(url).status_code == 200  # assembled: its runs looked for, then stored
    first = scrape(client)
    runs = value(first, reads, outcome="miss")
    assert runs >= 1 and value(first, writes, outcome="stored") == runs
    assert value(first, reads, outcome="hit") == 0
    assert client.get(url).status_code == 200  # the same runs, now stored
    second = scrape(client)
    assert value(second, reads, outcome="hit") == runs
    assert value(second, reads, outcome="miss") == runs
    assert value(second, writes, outcome="failed") == 0
    assert value(second, "catalogue_export_page_cache_evicted_bytes_total") == 0


def test_metrics_token(tmp_path: Path, db_url: str) -> None:
    runtime = Runtime(make_config(tmp_path, db_url, metrics_token="m" * 40)).start()
    try:
        client = create_app(runtime=runtime, background_indexer=False).test_client()
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth("x" * 40)).status_code == 401
        assert value(scrape(client, "m" * 40), "catalogue_database_up") == 1
    finally:
        runtime.close()


@pytest.mark.slow
def test_database_down_still_scrapes(tmp_path: Path) -> None:
    server = EmbeddedPostgres(tmp_path / "pg")
    url = server.start()
    runtime = Runtime(make_config(tmp_path, url, database_timeout=1.0)).start()
    try:
        client = create_app(runtime=runtime, background_indexer=False).test_client()
        assert value(scrape(client), "catalogue_database_up") == 1
        server.stop()
        samples = scrape(client)
        assert value(samples, "catalogue_database_up") == 0
        assert not any(name.startswith("catalogue_harvest") for name, _ in samples)
        assert value(samples, "catalogue_search_up") == 1  # tantivy does not need PostgreSQL
    finally:
        runtime.close()
        server.stop()


def test_access_log_is_structured_and_carries_no_payload(client: Any, runtime: Runtime,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    runtime.identities.create_user(SYSTEM, User("", "prov", Role.PROVIDER, "org-a"))
    token = runtime.identities.issue_token(SYSTEM, "prov").secret
    secret_query, secret_body = "QUERYSECRET4711", "BODYSECRET0815"
    with caplog.at_level(logging.INFO, logger="catalogue.access"):
        client.get(f"/api/v1/datasets?q={secret_query}", headers=auth(token))
        client.post("/api/v1/datasets?organisation_id=org-a", data=secret_body.encode(),
                    headers={**auth(token), "Content-Type": "text/turtle"})
    lines = [JsonFormatter().format(r) for r in caplog.records if r.name == "catalogue.access"]
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["route"] == "/api/v1/datasets" and first["path"] == "/api/v1/datasets"
    assert first["method"] == "GET" and first["status"] == 200 and first["role"] == "provider"
    assert first["duration_ms"] >= 0 and len(first["request_id"]) == 32
    assert second["method"] == "POST" and second["status"] == 400
    for line in lines:
        for secret in (secret_query, secret_body, token, token.split(".")[-1]):
            assert secret not in line
