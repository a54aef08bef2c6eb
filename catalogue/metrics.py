"""Prometheus metrics for ``GET /metrics``.

Two kinds of series:

* **this process**: request latency by method, route *template* (``/api/v1/datasets/<id>``,
  never the concrete path, so the number of series stays bounded) and status, observed by the
  app's after-request hook; and the DCAT export page cache's reads, writes and evictions;
* **the catalogue as a whole**, read from PostgreSQL at scrape time, because harvests run in
  other processes (CLI, cron, the scheduler of another ``catalogue serve``) and every process
  should report the same figures: harvest runs by kind and outcome and the records they wrote,
  cohort questions by outcome (budget refusals are ``outcome="refused"``), the search outbox
  (pending entries, age of the oldest), datasets by status, and whether the database and the
  search engine answer. A database that is down makes ``catalogue_database_up 0`` and leaves
  out the series read from it; the endpoint itself still answers.

Each app has its own registry (tests build many apps in one process).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from catalogue import __version__
from catalogue.errors import CatalogueError
from catalogue.store.audit import outbox_lag

if TYPE_CHECKING:
    from catalogue.runtime import Runtime

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: request latency buckets, in seconds (the search and cohort targets are 25-100 ms)
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNMATCHED = "(unmatched)"


class CatalogueCollector(Collector):
    """Series read from PostgreSQL and the search engine at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        yield InfoMetricFamily("catalogue", "The catalogue's version.",
                               value={"version": __version__})
        database_up = GaugeMetricFamily("catalogue_database_up",
                                        "1 when PostgreSQL answers, else 0.")
        rows: dict[str, list[Any]] | None = None
        try:
            rows = self._read()
        except CatalogueError as exc:
            log.warning("metrics: database unavailable (%s)", type(exc).__name__)
        except Exception as exc:  # a scrape never fails because of one source
            log.warning("metrics: database query failed (%s)", type(exc).__name__)
        database_up.add_metric([], 1.0 if rows is not None else 0.0)
        yield database_up
        if self.runtime.search is not None:
            search_up = GaugeMetricFamily("catalogue_search_up",
                                          "1 when the search engine answers, else 0.")
            try:
                self.runtime.search.ping()
                search_up.add_metric([], 1.0)
            except Exception:  # any failure means down
                search_up.add_metric([], 0.0)
            yield search_up
        if rows is not None:
            yield from self._families(rows)
        try:
            pages = self.runtime.export.pages
        except RuntimeError:  # a runtime not started has no export
            pages = None
        if pages is not None:
            yield from self._page_cache(dict(pages.counts))

    @staticmethod
    def _page_cache(counts: dict[str, int]) -> Iterator[Metric]:
        for name, doc, outcomes in (
                ("reads", "Runs of DCAT export pages this process looked for in the page cache: "
                          "found (hit) or assembled from stored fragments (miss).",
                 ("hit", "miss")),
                ("writes", "Runs this process wrote to the page cache (stored), or could not "
                           "(failed: the disk refused, or larger than the budget).",
                 ("stored", "failed"))):
            family = CounterMetricFamily(f"catalogue_export_page_cache_{name}", doc,
                                         labels=["outcome"])
            for outcome in outcomes:
                family.add_metric([outcome], float(counts[outcome]))
            yield family
        yield CounterMetricFamily(
            "catalogue_export_page_cache_evicted_bytes",
            "Bytes of least recently used runs this process removed to stay within "
            "CATALOGUE_EXPORT_PAGE_CACHE_MB.", value=float(counts["evicted_bytes"]))

    def _read(self) -> dict[str, list[Any]]:
        db = self.runtime.db
        assert db is not None
        with db.transaction() as conn:
            return {
                "runs": conn.execute(
                    "SELECT kind, status, count(*) AS n FROM harvest_runs WHERE NOT dry_run "
                    "GROUP BY kind, status").fetchall(),
                "records": conn.execute(
                    "SELECT r.kind, c.key AS outcome, sum((c.value)::numeric) AS n "
                    "FROM harvest_runs r, jsonb_each(r.counts) c "
                    "WHERE NOT r.dry_run AND r.status <> 'running' "
                    "AND jsonb_typeof(c.value) = 'number' GROUP BY r.kind, c.key").fetchall(),
                "questions": conn.execute(
                    "SELECT outcome, count(*) AS n FROM cohort_queries GROUP BY outcome"
                ).fetchall(),
                "outbox": [outbox_lag(conn)],
                "datasets": conn.execute(
                    "SELECT status, count(*) AS n FROM datasets GROUP BY status").fetchall(),
            }

    @staticmethod
    def _families(rows: dict[str, list[Any]]) -> Iterator[Metric]:
        runs = CounterMetricFamily(
            "catalogue_harvest_runs", "Finished harvest runs (dry runs excluded).",
            labels=["kind", "status"])
        running = GaugeMetricFamily("catalogue_harvest_runs_running",
                                    "Harvest runs in progress.", labels=["kind"])
        for r in rows["runs"]:
            if r["status"] == "running":
                running.add_metric([r["kind"]], float(r["n"]))
            else:
                runs.add_metric([r["kind"], r["status"]], float(r["n"]))
        yield runs
        yield running
        records = CounterMetricFamily(
            "catalogue_harvest_records",
            "Records handled by finished harvest runs, by what happened to them "
            "(created, updated, unchanged, withdrawn, failed, ...).", labels=["kind", "outcome"])
        for r in rows["records"]:
            records.add_metric([r["kind"], r["outcome"]], float(r["n"] or 0))
        yield records
        questions = CounterMetricFamily(
            "catalogue_cohort_questions",
            "Cohort count questions by outcome: answered, repeated (free), refused (privacy "
            "budget exhausted), invalid, failed (the engine did not answer), pending (charged, "
            "counting).",
            labels=["outcome"])
        seen = {r["outcome"]: float(r["n"]) for r in rows["questions"]}
        for outcome in ("answered", "repeated", "refused", "invalid", "failed", "pending"):
            questions.add_metric([outcome], seen.get(outcome, 0.0))
        yield questions
        refusals = CounterMetricFamily(
            "catalogue_cohort_budget_refusals",
            "Cohort questions refused because a privacy budget was exhausted.")
        refusals.add_metric([], seen.get("refused", 0.0))
        yield refusals
        pending, oldest = rows["outbox"][0]
        yield GaugeMetricFamily("catalogue_outbox_pending",
                                "Changes waiting to be applied to the search engine.",
                                value=float(pending))
        yield GaugeMetricFamily("catalogue_outbox_oldest_seconds",
                                "Age of the oldest change waiting for the search engine "
                                "(the indexer's lag; 0 when none waits).", value=oldest)
        datasets = GaugeMetricFamily("catalogue_datasets", "Datasets by status.",
                                     labels=["status"])
        for r in rows["datasets"]:
            datasets.add_metric([r["status"]], float(r["n"]))
        yield datasets


class Metrics:
    """The registry of one app."""

    def __init__(self, runtime: Runtime) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.latency = Histogram(
            "catalogue_http_request_duration_seconds",
            "HTTP request latency of this process, by method, route template and status.",
            ["method", "route", "status"], buckets=BUCKETS, registry=self.registry)
        self.registry.register(CatalogueCollector(runtime))

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        self.latency.labels(method, route or UNMATCHED, str(status)).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
