"""DCAT-AP export benchmark: the whole catalogue through ``/dcat/catalog`` over loopback HTTP.

Measured in one run, on one generated catalogue of realistic EUCAIM-DCAT-AP descriptions:

- the export in each format, following ``hydra:next`` (the ``Link`` header) page by page and
  reading every byte: a *cold* pass (the first export in a format renders every dataset's
  fragment and stores it) and a *warm* pass (the steady state: fragments stored);
- the baseline: the same per-dataset graphs (description, aggregates applied, and catalogue
  record), built beforehand, serialised one by one by the fastest serializer available
  (Oxigraph) alone; rdflib's serializer on a smaller sample for context;
- memory: the peak RSS of ``catalogue export dcat`` (one process writing the whole catalogue as
  one document) on the small catalogue, then on the full one.

Ratios are export datasets/s over Oxigraph-alone datasets/s.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psutil
import pyoxigraph as ox
from rdflib import Graph

from catalogue.dcat import export as rdf
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.profiles import get_profile
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.store.datasets import DatasetRepository, content_hash
from catalogue.testing.app_server import serve
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES

FORMATS = ("nt", "turtle", "rdfxml", "jsonld")
PROVIDERS = 30
TEMPLATES = 42  # distinct generated descriptions; the catalogue is made of renamed copies
_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


def _templates(base: str) -> list[Dataset]:
    profile = get_profile("eucaim")
    out = []
    for i in range(TEMPLATES):
        _, text = record(i)
        body = (PREFIXES + EUCAIM_PREFIX + text.replace("@@BASE@@", base)).encode()
        graph = parse_rdf(body, content_type="text/turtle")
        node = profile.dataset_nodes(profile.canonicalise(graph))[0]
        out.append(profile.parse(graph, node, "bench-00"))
    return out


def _copy(template: Dataset, i: int) -> Dataset:
    """Dataset ``i``: template ``i % TEMPLATES`` renamed throughout (identifier, IRIs, title)."""
    old = template.identifier
    new = f"exp-{i:07d}"
    graph = (template.graph or "").replace(old, new).replace(
        f"imaging cohort {i % TEMPLATES}\"", f"imaging cohort {i}\"")
    title = {k: v.replace(f"cohort {i % TEMPLATES}", f"cohort {i}")
             for k, v in template.title.items()}
    ds = replace(template, identifier=new, iri=(template.iri or "").replace(old, new) or None,
                 organisation_id=f"bench-{i % PROVIDERS:02d}", title=title, graph=graph,
                 status=DatasetStatus.PUBLISHED, id=None,
                 distributions=[replace(d, access_url=(d.access_url or "").replace(old, new)
                                        or None) for d in template.distributions])
    ds.content_hash = content_hash(ds)
    return ds


def load(runtime: Runtime, templates: list[Dataset], start: int, stop: int,
         batch: int = 2000) -> float:
    started = time.perf_counter()
    for low in range(start, stop, batch):
        with runtime.database.transaction() as conn:
            DatasetRepository(conn).write_many(
                [_copy(templates[i % TEMPLATES], i) for i in range(low, min(stop, low + batch))],
                [])
    return time.perf_counter() - started


def export_http(base: str, fmt: str, page_size: int, public: str) -> tuple[int, int, float]:
    """(datasets, bytes, seconds) of one complete export in ``fmt`` over HTTP. ``public`` is
    the catalogue's configured base URL, which its links use (not the loopback port)."""
    url: str | None = f"{base}/dcat/catalog?format={fmt}&page_size={page_size}"
    datasets = size = 0
    started = time.perf_counter()
    while url:
        with urllib.request.urlopen(url, timeout=600) as resp:  # noqa: S310 - loopback only
            body = resp.read()
            datasets = max(datasets, int(resp.headers["X-Total-Count"]))
            match = _NEXT.search(resp.headers.get("Link", ""))
        size += len(body)
        url = match.group(1).replace(public, base, 1) if match else None
    return datasets, size, time.perf_counter() - started


def _graphs(runtime: Runtime, limit: int) -> list[tuple[str, Graph]]:
    """(scope, per-dataset graph) as the export builds them: description with aggregates
    applied, plus its catalogue record."""
    service = runtime.export
    with runtime.database.transaction() as conn:
        rows = conn.execute(
            "SELECT d.*, NULL AS source_kind, NULL AS source_url FROM datasets d "
            "WHERE status = 'published' ORDER BY id LIMIT %s", (limit,)).fetchall()
        datasets = {d.id: d for d in DatasetRepository(conn).get_many(
            [str(r["id"]) for r in rows])}
    out = []
    for row in rows:
        ds = datasets[str(row["id"])]
        graph = service.dataset_graph(ds, service.dataset_iri(row))
        for triple in rdf.record_graph(service._record(row)):
            graph.add(triple)
        out.append((str(row["id"]).replace("-", "")[:12], graph))
    return out


def baseline(graphs: list[tuple[str, Graph]], fmt: str) -> float:
    """Datasets/s of Oxigraph serialising the prepared per-dataset graphs alone."""
    prepared = [rdf.ox_triples(g, scope) for scope, g in graphs]
    ox_format = rdf.EXPORT_FORMATS[fmt][1]
    prefixes = None if fmt == "nt" else dict(rdf.PREFIXES)
    started = time.perf_counter()
    for triples in prepared:
        ox.serialize(triples, format=ox_format, prefixes=prefixes)
    return len(prepared) / (time.perf_counter() - started)


def rdflib_baseline(graphs: list[tuple[str, Graph]], fmt: str) -> float:
    started = time.perf_counter()
    for _, graph in graphs:
        graph.serialize(format={"nt": "nt", "turtle": "turtle"}[fmt])
    return len(graphs) / (time.perf_counter() - started)


def peak_rss(runtime: Runtime, fmt: str) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of ``catalogue export dcat`` writing the catalogue to
    /dev/null in its own process, sampled every 10 ms."""
    with tempfile.TemporaryDirectory(prefix="catalogue-bench-export-") as folder:
        env = {**os.environ, "CATALOGUE_DATABASE_URL": runtime.database.url,
               "CATALOGUE_DATA_DIR": folder, "CATALOGUE_SECRET_KEY": runtime.secret_key,
               "CATALOGUE_BASE_URL": runtime.config.public_base_url,
               "CATALOGUE_LOG_LEVEL": "WARNING"}
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "catalogue.cli", "export", "dcat", "--format", fmt,
             "--output", os.devnull], env=env)
        peak = 0
        watched = psutil.Process(proc.pid)
        while proc.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.01)
        if proc.returncode != 0:
            raise RuntimeError(f"catalogue export dcat failed with status {proc.returncode}")
        return peak, time.perf_counter() - started


def run(runtime: Runtime, datasets: int = 100_000, small: int = 10_000, page_size: int = 1000,
        sample: int = 5000, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    say = progress or (lambda message: None)
    small = min(small, datasets)
    for n in range(PROVIDERS):
        try:
            runtime.identities.create_organisation(
                SYSTEM, Organisation(f"bench-{n:02d}", f"Provider {n}", "ES"))
        except Exception:  # noqa: S110 - already there from an earlier run
            pass
    templates = _templates("https://provider.example")
    figures: dict[str, Any] = {"datasets": datasets, "small": small, "page_size": page_size,
                               "formats": {}}
    say(f"loading {small} datasets")
    figures["load_s"] = load(runtime, templates, 0, small)
    figures["rss_small"] = {}
    for fmt in ("nt", "turtle"):
        peak, seconds = peak_rss(runtime, fmt)  # also renders the fragments of the small set
        figures["rss_small"][fmt] = {"peak_mb": round(peak / 2**20, 1), "s": round(seconds, 1)}
        say(f"RSS {small} {fmt}: {peak / 2**20:.0f} MB")
    say(f"loading {datasets - small} more datasets")
    figures["load_s"] += load(runtime, templates, small, datasets)
    with serve(runtime) as base:
        for fmt in FORMATS:
            public = runtime.config.public_base_url
            n, _size, cold = export_http(base, fmt, page_size, public)
            n2, size2, warm = export_http(base, fmt, page_size, public)
            assert n == n2 == datasets, (n, n2, datasets)
            figures["formats"][fmt] = {"bytes": size2, "cold_s": round(cold, 2),
                                       "warm_s": round(warm, 2),
                                       "cold_per_s": round(n / cold, 1),
                                       "warm_per_s": round(n / warm, 1)}
            say(f"{fmt}: cold {n / cold:.0f}/s, warm {n / warm:.0f}/s, {size2 / 2**20:.0f} MB")
    figures["rss_full"] = {}
    for fmt in ("nt", "turtle"):
        peak, seconds = peak_rss(runtime, fmt)
        figures["rss_full"][fmt] = {"peak_mb": round(peak / 2**20, 1), "s": round(seconds, 1)}
        say(f"RSS {datasets} {fmt}: {peak / 2**20:.0f} MB")
        figures["rss_full"][fmt]["ratio_to_small"] = round(
            peak / 2**20 / figures["rss_small"][fmt]["peak_mb"], 3)
    say(f"baseline: {min(sample, datasets)} prepared per-dataset graphs")
    graphs = _graphs(runtime, min(sample, datasets))
    for fmt in FORMATS:
        alone = baseline(graphs, fmt)
        entry = figures["formats"][fmt]
        entry["oxigraph_alone_per_s"] = round(alone, 1)
        entry["ratio_warm"] = round(entry["warm_per_s"] / alone, 3)
        entry["ratio_cold"] = round(entry["cold_per_s"] / alone, 3)
    context = graphs[: min(500, len(graphs))]
    figures["rdflib_alone_per_s"] = {fmt: round(rdflib_baseline(context, fmt), 1)
                                     for fmt in ("nt", "turtle")}
    return figures


def table(figures: dict[str, Any]) -> str:
    lines = [f"DCAT export of {figures['datasets']:,} datasets, pages of "
             f"{figures['page_size']} over loopback HTTP",
             f"{'format':8} {'cold/s':>9} {'warm/s':>9} {'oxigraph/s':>11} {'warm×':>7} "
             f"{'cold×':>7} {'MB':>7}"]
    for fmt, e in figures["formats"].items():
        lines.append(f"{fmt:8} {e['cold_per_s']:>9,.0f} {e['warm_per_s']:>9,.0f} "
                     f"{e['oxigraph_alone_per_s']:>11,.0f} {e['ratio_warm']:>7.2f} "
                     f"{e['ratio_cold']:>7.2f} {e['bytes'] / 2**20:>7.0f}")
    for fmt in figures["rss_full"]:
        lines.append(f"peak RSS of `catalogue export dcat --format {fmt}`: "
                     f"{figures['rss_small'][fmt]['peak_mb']:.0f} MB at {figures['small']:,} "
                     f"datasets, {figures['rss_full'][fmt]['peak_mb']:.0f} MB at "
                     f"{figures['datasets']:,} (×{figures['rss_full'][fmt]['ratio_to_small']})")
    lines.append("rdflib alone (context): " + json.dumps(figures["rdflib_alone_per_s"]))
    return "\n".join(lines)
