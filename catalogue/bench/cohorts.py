"""Cohort-count benchmark: a generated population (default 1,000,000 subjects and 3,000,000
studies with realistic correlations), indexed, and typical count questions asked through the
real HTTP API and straight to the engine.

Measured in one run, against the engine the runtime is configured with (embedded tantivy, or
OpenSearch when ``CATALOGUE_SEARCH_URL`` is set):
- generation into PostgreSQL (``catalogue.bench.synthetic``), subjects/s;
- indexing: the subjects index rebuilt from PostgreSQL (nested studies; tantivy adds one item
  document per study), subjects/s;
- typical questions (3-6 criteria: a diagnosis with its narrower concepts, a study with
  modality, body part and an age range, sex, a period..., grouped by dataset), each through the
  API (token, canonicalisation, plan, engine, noise, budget ledger, audit, JSON over HTTP on
  loopback) and as the bare engine request for the same question (OpenSearch: the same search
  body posted to the cluster over HTTP, outside the shard request cache, which is emptied
  first, so that neither is answered from it; tantivy: the same searcher calls in-process).
  The two take turns going first (the second evaluation of a question pays for the engine's
  filter cache). Latencies are p50/p95 in ms; API/engine is the whole overhead of the
  catalogue.
The issue's targets are reported next to the measured values; nothing is asserted here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import math
import random
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from catalogue.bench.search import percentile
from catalogue.bench.served import serve_process, wait_ready
from catalogue.bench.synthetic import GenerationReport, Spec, generate
from catalogue.cohorts.criteria import parse_question, plan, to_filter
from catalogue.errors import ValidationError
from catalogue.model.identity import SYSTEM, Role, User
from catalogue.runtime import Runtime
from catalogue.search.backends import es_dsl
from catalogue.search.query import CountRequest
from catalogue.services.cohorts import published_only
from catalogue.testing.app_server import free_port, serve

TARGETS: dict[str, dict[str, float | None]] = {"tantivy": {"api_p95_ms": 50.0, "ratio": None},
           "opensearch": {"api_p95_ms": 100.0, "ratio": 1.3}}
#: diagnosis -> typical imaging (modality, body part) of its questions
TYPICAL = {
    "snomed:93880001": [("CT", "CHEST"), ("PT", "WHOLEBODY"), ("CT", "LUNG")],
    "snomed:254626006": [("CT", "CHEST"), ("CT", "LUNG")],
    "snomed:254837009": [("MG", "BREAST"), ("MR", "BREAST")],
    "snomed:399068003": [("MR", "PROSTATE"), ("MR", "PELVIS")],
    "snomed:428061005": [("MR", "BRAIN"), ("MR", "HEAD")],
    "snomed:363406005": [("CT", "ABDOMEN"), ("CT", "COLON")],
    "snomed:93870000": [("CT", "LIVER"), ("MR", "LIVER")],
}


def questions(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct typical questions of 3-6 criteria, grouped by dataset."""
    rnd = random.Random(seed)  # noqa: S311 - not security
    out: dict[str, dict[str, Any]] = {}
    while len(out) < n:
        condition = rnd.choice(sorted(TYPICAL))
        modality, body_part = rnd.choice(TYPICAL[condition])
        low = rnd.choice(range(30, 75, 5))
        study: dict[str, Any] = {"modality": [modality], "body_part": [body_part],
                                 "age": {"gte": low, "lte": low + rnd.choice((10, 15, 20))}}
        criteria: list[dict[str, Any]] = [{"condition": [condition]}, {"study": study}]
        if rnd.random() < 0.5:
            study["period"] = {"from": str(rnd.randint(2008, 2018))}
        if rnd.random() < 0.4:
            criteria.append({"sex": [rnd.choice(["female", "male"])]})
        if rnd.random() < 0.3:
            criteria.append({"none_of": [{"modality": ["PT"]}]})
        body = {"criteria": {"all_of": criteria}, "group_by": ["dataset"]}
        out[json.dumps(body, sort_keys=True)] = body
    return list(out.values())


def run(runtime: Runtime, spec: Spec, queries: int = 200, seed: int = 0, reuse: bool = False,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Generate, index, ask; with ``reuse`` only ask (the population of a kept run)."""
    say = progress or (lambda _message: None)
    backend = runtime.search
    if backend is None or runtime.indexer is None:
        raise RuntimeError("the cohort benchmark needs a search engine")
    engine = backend.ping()
    family = "tantivy" if backend.name == "tantivy" else "opensearch"
    with runtime.database.transaction() as conn:
        row = conn.execute("SELECT count(*) AS n FROM subjects").fetchone()
    populated = bool(row and row["n"])
    if populated and not reuse:
        raise ValidationError("the cohort benchmark needs an empty catalogue (it generates its "
                              "own population)")
    if reuse and not populated:
        raise ValidationError("nothing to reuse: the catalogue has no subjects")
    report: GenerationReport | None = None
    index_s = 0.0
    if not reuse:
        say(f"generating {spec.subjects:,} subjects and about {spec.studies:,} studies")
        with runtime.database.transaction() as conn:
            report = generate(conn, spec)
        say(f"indexing into {engine.get('engine')} {engine.get('version')}")
        runtime.indexer.batch_size = 5_000
        started = time.perf_counter()
        runtime.indexer.rebuild(index="subjects")
        index_s = time.perf_counter() - started
        runtime.identities.create_user(SYSTEM, User("", "bench-researcher", Role.RESEARCHER))
    token = runtime.identities.issue_token(SYSTEM, "bench-researcher").secret
    # the benchmark asks more questions than a budget allows: timing, not privacy, is measured
    runtime.cohorts.policy = dataclasses.replace(runtime.cohorts.policy, budget=1e12,
                                                 organisation_budget=1e12)
    asked = questions(queries + 10, seed)
    alias = backend.logical_name("subjects")
    ctx = runtime.cohorts.context()
    bare = _bare(runtime, family, alias)
    api_ms: list[float] = []
    engine_ms: list[float] = []
    cells = 0
    nonempty = 0
    if family == "opensearch":  # a kept population asked the same questions before
        backend._request("POST", f"/{alias}/_cache/clear", params={"request": "true"})  # type: ignore[attr-defined]
    say(f"asking {queries} questions")
    with _api(runtime, family) as base:
        client = _Client(base, token)
        for number, body in enumerate(asked):
            question = parse_question(body, ctx)
            request = CountRequest("studies", plan(question, ctx).engine,
                                   filters=(*published_only(ctx),
                                            to_filter(question.criteria, ctx)),
                                   item_cap=runtime.cohorts.policy.study_cap)
            # the bare request outside the shard request cache (it neither reads nor fills it),
            # so that both measure the evaluation of a new question. Whichever runs second
            # meets the engine's filter cache deciding to cache what it saw once (Lucene caches
            # a filter on its second use, building its bitset then: measured here, 1-2 ms
            # slower at p50 and 5 ms at p90): the two take turns going first
            if number % 2:
                api_s, answer = client.count(body)
                engine_s = bare(request)
            else:
                engine_s = bare(request)
                api_s, answer = client.count(body)
            if number < 10:
                continue  # warm-up
            api_ms.append(api_s * 1000)
            engine_ms.append(engine_s * 1000)
            cells = len(answer["groups"])
            nonempty += not answer["total"]["subjects"]["suppressed"]
    with runtime.database.transaction() as conn:
        sizes = conn.execute(
            "SELECT (SELECT count(*) FROM subjects) AS subjects, "
            "(SELECT count(*) FROM imaging_studies) AS studies, "
            "(SELECT count(*) FROM datasets WHERE status = 'published') AS datasets, "
            "(SELECT count(*) FROM organisations) AS providers").fetchone()
    assert sizes is not None
    figures: dict[str, Any] = {
        "engine": engine.get("engine", backend.name),
        "engine_version": engine.get("version"),
        "engine_nodes": engine.get("nodes", 1),
        **{k: int(v) for k, v in sizes.items()},
        "reused_population": reuse,
    }
    if report is not None:
        figures.update({
            "generate_s": round(report.seconds, 1),
            "generate_subjects_per_s": round(report.subjects / report.seconds),
            "index_s": round(index_s, 1),
            "index_subjects_per_s": round(report.subjects / index_s),
        })
    figures.update({
        "questions": len(api_ms),
        "cells_per_question": cells,
        "questions_with_a_released_total": nonempty,
    })
    p50, p95 = percentile(api_ms, 0.5), percentile(api_ms, 0.95)
    e50, e95 = percentile(engine_ms, 0.5), percentile(engine_ms, 0.95)
    targets = TARGETS[family]
    figures.update({
        "api_p50_ms": round(p50, 2), "api_p95_ms": round(p95, 2),
        "engine_p50_ms": round(e50, 2), "engine_p95_ms": round(e95, 2),
        "ratio_api_engine_p50": round(p50 / e50, 2), "ratio_api_engine_p95": round(p95 / e95, 2),
        "api_target_p95_ms": targets["api_p95_ms"],
        "api_meets_p95_target": p95 <= (targets["api_p95_ms"] or math.inf),
        "ratio_target": targets["ratio"],
        "ratio_meets_target": None if targets["ratio"] is None else p95 / e95 <= targets["ratio"],
    })
    return figures


@contextlib.contextmanager
def _api(runtime: Runtime, family: str) -> Iterator[str]:
    """The API the questions go to; yields its base URL. On Elasticsearch/OpenSearch,
    ``catalogue serve`` in its own process, as deployed: served from this process, the
    benchmark's client and the server's threads would share one interpreter (the bare
    request's client has it to itself; 0-1.3 ms of an answer at p50, measured). An engine in
    the process (tantivy) is served from this one, which holds its index."""
    if family == "tantivy":
        with serve(runtime, threads=4, settle=True) as base:  # settled as `catalogue serve` is
            yield base
        return
    config = runtime.config
    port = free_port()
    settings = {"CATALOGUE_SEARCH_URL": config.search_url,
                "CATALOGUE_SEARCH_INDEX_PREFIX": config.search_index_prefix}
    if runtime.embedded is None:  # a server of its own, else the folder's embedded one
        settings["CATALOGUE_DATABASE_URL"] = config.database_url
    with serve_process(Path(config.data_dir), port, workers=4, settings=settings) as proc:
        wait_ready(port, proc, Path(config.data_dir))
        yield f"http://127.0.0.1:{port}"


def _bare(runtime: Runtime, family: str, alias: str) -> Callable[[CountRequest], float]:
    """The same question as the bare engine request, timed."""
    backend = runtime.search
    assert backend is not None
    if family == "tantivy":
        def tantivy(request: CountRequest) -> float:
            started = time.perf_counter()
            backend.count_cells(alias, request)
            return time.perf_counter() - started
        return tantivy
    url = urllib.parse.urlsplit(runtime.config.search_url.split(",")[0].strip())
    connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port or 9200,
                                            timeout=60)
    definition = backend._definition(alias)  # type: ignore[attr-defined]

    def opensearch(request: CountRequest) -> float:
        body, _groups = es_dsl.count_body(definition, request)
        payload = json.dumps(body)
        started = time.perf_counter()
        connection.request("POST", f"/{alias}/_search?request_cache=false", payload,
                           {"Content-Type": "application/json"})
        response = connection.getresponse()
        response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"the engine answered {response.status}")
        return elapsed
    return opensearch


class _Client:
    """Count questions over one keep-alive HTTP connection on loopback."""

    def __init__(self, base: str, token: str) -> None:
        url = urllib.parse.urlsplit(base)
        self.connection = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port,
                                                     timeout=120)
        self.headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def count(self, body: dict[str, Any]) -> tuple[float, dict[str, Any]]:
        payload = json.dumps(body)
        started = time.perf_counter()
        self.connection.request("POST", "/api/v1/cohorts/count", payload, self.headers)
        response = self.connection.getresponse()
        data = response.read()
        elapsed = time.perf_counter() - started
        if response.status != 200:
            raise RuntimeError(f"the API answered {response.status}: {data[:300]!r}")
        return elapsed, json.loads(data)
