"""DCAT-AP export benchmark: the whole catalogue through ``/dcat/catalog`` over loopback HTTP.

Measured in one run, on one generated catalogue of realistic EUCAIM-DCAT-AP descriptions
(:func:`catalogue.testing.dcat_generator.record` parsed once, then renamed copies):

- *first export*: ``catalogue export dcat`` (its own process) writing the whole catalogue with
  nothing cached, i.e. rendering every dataset (the service renders a dataset in all four
  formats at once, so only the first export of a catalogue is cold, whatever its format);
- *cold*, per format, over HTTP: one provider's datasets (1/30 of the catalogue, listed with
  ``?organisation=``) with their stored fragments (and pages) deleted beforehand; then the
  same slice again (its pages now stored);
- *warm*, per format, over HTTP: the whole catalogue with every fragment stored and no page
  stored (every page assembled), page by page following the ``Link: rel="next"`` header,
  reading every byte; then *repeat*: the same walk again, every page's runs now stored (a
  repeat harvest of an unchanged catalogue, or a second harvester); then *changed*: again
  after one dataset changed (the harvest after an ordinary update: one run assembled, every
  opening new); then *shifted*: again after one dataset near the start was withdrawn (every
  later page shifted by one; their edges are byte ranges of the stored runs, only the run the
  dataset was in is assembled); rounds interleaved across formats, the best of
  :data:`ROUNDS` counts;
- the baseline: the same per-dataset graphs (description with aggregates applied, plus its
  catalogue record), converted to Oxigraph triples beforehand, serialised one by one by the
  fastest serializer available (Oxigraph) alone, best of :data:`ROUNDS`; rdflib's serializer
  on a smaller sample, for context; and reading the stored fragments from PostgreSQL and
  unpacking them, alone (the ceiling of any export that serves stored bytes);
- memory: the peak RSS (``VmHWM``) of ``catalogue export dcat`` on the small catalogue and on
  the full one, in the same states (first export, and warm in Turtle and N-Triples).

Ratios are export datasets/s over Oxigraph-alone datasets/s of the same format. The tables are
vacuumed and analysed after each bulk write (what autovacuum would otherwise do in the middle
of a measurement).
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
from dataclasses import dataclass, replace
from typing import Any

import psutil
import psycopg
import pyoxigraph as ox
from rdflib import Graph

from catalogue.dcat import export as rdf
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.namespaces import DCAT
from catalogue.dcat.profiles import get_profile
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.store.datasets import DatasetRepository, content_hash
from catalogue.store.exports import ExportRepository, Selection, unpack
from catalogue.testing.app_server import serve
from catalogue.testing.dcat_generator import EUCAIM_PREFIX, record
from catalogue.testing.dcat_server import PREFIXES

FORMATS = ("turtle", "nt", "rdfxml", "jsonld")
PROVIDERS = 30
TEMPLATES = 42  # distinct generated descriptions; the catalogue is made of renamed copies
ROUNDS = 2  # rounds of each repeated measurement; the best one counts
NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')
MB = 2**20


def provider(n: int) -> str:
    return f"bench-{n % PROVIDERS:02d}"


# -- the catalogue --------------------------------------------------------------------------------


def templates(base: str) -> list[Dataset]:
    """The generated descriptions, each parsed once by the EUCAIM profile."""
    profile = get_profile("eucaim")
    out = []
    for i in range(TEMPLATES):
        _, text = record(i)
        body = (PREFIXES + EUCAIM_PREFIX + text.replace("@@BASE@@", base)).encode()
        graph = parse_rdf(body, content_type="text/turtle")
        node = profile.dataset_nodes(profile.canonicalise(graph))[0]
        out.append(profile.parse(graph, node, provider(0)))
    return out


def clone(template: Dataset, i: int) -> Dataset:
    """Dataset ``i``: template ``i % TEMPLATES`` renamed throughout (identifier, IRIs in the
    stored graph, the fields and the distributions, title), published by provider ``i % 30``."""
    old, new = template.identifier, f"exp-{i:07d}"
    t = i % TEMPLATES
    graph = (template.graph or "").replace(old, new).replace(
        f'imaging cohort {t}"', f'imaging cohort {i}"')
    ds = replace(
        template, identifier=new, iri=(template.iri or "").replace(old, new) or None,
        organisation_id=provider(i), status=DatasetStatus.PUBLISHED, id=None, graph=graph,
        title={k: v.replace(f"cohort {t}", f"cohort {i}") for k, v in template.title.items()},
        fields=json.loads(json.dumps(template.fields).replace(old, new)),
        distributions=[replace(d, access_url=(d.access_url or "").replace(old, new) or None)
                       for d in template.distributions])
    ds.content_hash = content_hash(ds)
    return ds


def load(runtime: Runtime, made: list[Dataset], start: int, stop: int,
         batch: int = 2000) -> float:
    """Write datasets ``start``..``stop`` (COPY, in batches); seconds taken."""
    started = time.perf_counter()
    for low in range(start, stop, batch):
        with runtime.database.transaction() as conn:
            DatasetRepository(conn).write_many(
                [clone(made[i % TEMPLATES], i) for i in range(low, min(stop, low + batch))], [])
    return time.perf_counter() - started


def settle(runtime: Runtime) -> None:
    """VACUUM ANALYZE the export's tables (what autovacuum does after bulk writes, and would
    otherwise do in the middle of a measurement)."""
    with psycopg.connect(runtime.database.url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) datasets, dataset_exports")


def forget_pages(runtime: Runtime) -> None:
    """Empty the page cache: the next walk assembles every page from stored fragments (the
    first harvest after the cache was emptied or evicted)."""
    if runtime.export.pages is not None:
        runtime.export.pages.clear()


def forget(runtime: Runtime, organisation: str | None = None) -> None:
    """Delete the stored fragments (of one provider's datasets) and every stored page: the
    next export renders."""
    forget_pages(runtime)
    with runtime.database.transaction() as conn:
        if organisation is None:
            conn.execute("TRUNCATE dataset_exports")
        else:
            conn.execute("DELETE FROM dataset_exports e USING datasets d WHERE "
                         "d.id = e.dataset_id AND d.organisation_id = %s", (organisation,))


# -- exporting ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Export:
    datasets: int
    pages: int
    size: int
    seconds: float

    @property
    def per_s(self) -> float:
        return self.datasets / self.seconds


def export_http(base: str, fmt: str, page_size: int, public: str,
                organisation: str | None = None) -> Export:
    """One complete export in ``fmt`` over HTTP, following ``Link: rel="next"``. ``public``
    is the catalogue's configured base URL, which its links use (not the loopback port)."""
    query = f"format={fmt}&page_size={page_size}"
    if organisation:
        query += f"&organisation={organisation}"
    url: str | None = f"{base}/dcat/catalog?{query}"
    total = pages = size = 0
    started = time.perf_counter()
    while url:
        with urllib.request.urlopen(url, timeout=600) as resp:  # noqa: S310 - loopback only
            body = resp.read()
            total = int(resp.headers["X-Total-Count"])
            match = NEXT.search(resp.headers.get("Link", ""))
        pages += 1
        size += len(body)
        url = match.group(1).replace(public, base, 1) if match else None
    seconds = time.perf_counter() - started
    if pages != max(1, -(-total // page_size)):
        raise RuntimeError(f"{fmt}: {pages} pages for {total} datasets of {page_size}")
    return Export(total, pages, size, seconds)


def first_page(base: str, fmt: str, page_size: int) -> int:
    """How many datasets the first page in ``fmt`` lists, parsed as a whole document."""
    url = f"{base}/dcat/catalog?format={fmt}&page_size={page_size}"
    with urllib.request.urlopen(url, timeout=600) as resp:  # noqa: S310 - loopback only
        graph = parse_rdf(resp.read(), content_type=rdf.EXPORT_FORMATS[fmt][0])
    return len(set(graph.objects(None, DCAT.dataset)))


def _peak(pid: int) -> int:
    """The high-water mark of the process's resident set (Linux), else its current RSS."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(psutil.Process(pid).memory_info().rss)


def dump(runtime: Runtime, fmt: str) -> tuple[int, float]:
    """(peak RSS in bytes, seconds) of ``catalogue export dcat --format fmt`` writing the whole
    catalogue to /dev/null in a process of its own (sampled every 20 ms)."""
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
        try:
            while proc.poll() is None:
                try:
                    peak = max(peak, _peak(proc.pid))
                except (OSError, psutil.Error):
                    pass  # exited between poll() and the sample
                time.sleep(0.02)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"catalogue export dcat failed with status {proc.returncode}")
        return peak, seconds


# -- the baseline ---------------------------------------------------------------------------------


def prepare(runtime: Runtime, limit: int, keep_graphs: int
            ) -> tuple[list[list[ox.Triple]], list[Graph]]:
    """The first ``limit`` published datasets' graphs as the export builds them (description
    with aggregates applied, plus its catalogue record) as Oxigraph triples, and the first
    ``keep_graphs`` of them as rdflib graphs."""
    service = runtime.export
    with runtime.database.transaction() as conn:
        rows = ExportRepository(conn).page(Selection(), None, limit)
    triples: list[list[ox.Triple]] = []
    graphs: list[Graph] = []
    for low in range(0, len(rows), 1000):
        chunk = rows[low:low + 1000]
        with runtime.database.transaction() as conn:
            found = {d.id: d for d in DatasetRepository(conn).get_many(
                [str(r["id"]) for r in chunk])}
        for row in chunk:
            graph = service.dataset_graph(found[str(row["id"])], service.dataset_iri(row))
            for triple in rdf.record_graph(service._record(row)):
                graph.add(triple)
            triples.append(rdf.ox_triples(graph, str(row["id"]).replace("-", "")[:12]))
            if len(graphs) < keep_graphs:
                graphs.append(graph)
    return triples, graphs


def stored_alone(runtime: Runtime, fmt: str, page_size: int) -> float:
    """Datasets/s of reading every stored fragment in ``fmt`` from PostgreSQL and unpacking it
    (keyset pages, binary transfer), alone: what an export serving stored bytes cannot beat."""
    n = 0
    after = "00000000-0000-0000-0000-000000000000"
    started = time.perf_counter()
    with runtime.database.transaction() as conn:
        while True:
            rows = conn.execute(
                "SELECT dataset_id, body FROM dataset_exports WHERE format = %s AND "
                "dataset_id > %s ORDER BY dataset_id LIMIT %s", (fmt, after, page_size),
                binary=True).fetchall()
            n += len([unpack(row["body"]) for row in rows])
            if len(rows) < page_size:
                break
            after = rows[-1]["dataset_id"]
    return n / (time.perf_counter() - started)


def oxigraph_alone(prepared: list[list[ox.Triple]], fmt: str) -> float:
    """Datasets/s of Oxigraph serialising each prepared graph on its own (as the export's
    fragments: our prefix table except in N-Triples); the best of :data:`ROUNDS`."""
    ox_format = rdf.EXPORT_FORMATS[fmt][1]
    prefixes = None if fmt == "nt" else dict(rdf.PREFIXES)
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for triples in prepared:
            ox.serialize(triples, format=ox_format, prefixes=prefixes)
        best = min(best, time.perf_counter() - started)
    return len(prepared) / best


def rdflib_alone(graphs: list[Graph], fmt: str) -> float:
    started = time.perf_counter()
    for graph in graphs:
        graph.serialize(format={"nt": "nt", "turtle": "turtle"}[fmt])
    return len(graphs) / (time.perf_counter() - started)


# -- the run --------------------------------------------------------------------------------------


def _memory(runtime: Runtime, say: Callable[[str], None], size: int) -> dict[str, Any]:
    """Peak RSS and rate of the first export (nothing stored: it renders every dataset, which
    every later export needs anyway) and of warm exports."""
    forget(runtime)
    peak, seconds = dump(runtime, "turtle")
    out: dict[str, Any] = {"first_export_turtle": {
        "peak_mb": round(peak / MB, 1), "s": round(seconds, 1),
        "per_s": round(size / seconds, 1)}}
    say(f"{size:,} datasets, first export (renders all): {size / seconds:,.0f}/s, "
        f"peak RSS {peak / MB:.0f} MB")
    settle(runtime)
    for fmt in ("turtle", "nt"):
        peak, seconds = dump(runtime, fmt)
        out[f"warm_{fmt}"] = {"peak_mb": round(peak / MB, 1), "s": round(seconds, 1),
                              "per_s": round(size / seconds, 1)}
        say(f"{size:,} datasets, warm {fmt}: {size / seconds:,.0f}/s, peak RSS "
            f"{peak / MB:.0f} MB")
    return out


def _cold(runtime: Runtime, base: str, page_size: int, datasets: int,
          say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Per format: one provider's datasets exported with nothing stored, then again."""
    public = runtime.config.public_base_url
    out = {}
    for n, fmt in enumerate(FORMATS):
        listed = first_page(base, fmt, page_size)  # untimed: the document parses
        if listed != min(page_size, datasets):
            raise RuntimeError(f"{fmt}: the first page lists {listed} datasets")
        org = provider(n)
        forget(runtime, org)
        cold = export_http(base, fmt, page_size, public, org)
        again = export_http(base, fmt, page_size, public, org)
        if cold.datasets != again.datasets or not cold.datasets:
            raise RuntimeError(f"{fmt}: {cold.datasets} then {again.datasets} datasets")
        out[fmt] = {"cold_datasets": cold.datasets, "cold_per_s": round(cold.per_s, 1),
                    "cold_slice_repeat_per_s": round(again.per_s, 1)}
        say(f"{fmt}: cold {cold.per_s:,.0f}/s on {cold.datasets:,} datasets (the same again, "
            f"pages stored: {again.per_s:,.0f}/s)")
    return out


def change_one(runtime: Runtime, n: int) -> None:
    """Dataset ``n`` (in id order) changes, as a provider's update does to what the export
    reads (a new version and change time): its stored fragments and the stored run it is in
    are out of date, and every page's opening (the catalogue's last change) moves."""
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE datasets SET version = version + 1, updated_at = now() WHERE id = "
                     "(SELECT id FROM datasets WHERE status = 'published' ORDER BY id "
                     "OFFSET %s LIMIT 1)", (n,))


def withdraw_one(runtime: Runtime, n: int) -> str:
    """Dataset ``n`` (in id order) is withdrawn, as a provider's withdrawal changes what the
    export reads: the complete listing loses it, so every page after it shifts by one
    dataset. Its id (for :func:`republish`)."""
    with runtime.database.transaction() as conn:
        row = conn.execute(
            "UPDATE datasets SET status = 'withdrawn', withdrawn_at = now(), "
            "version = version + 1, updated_at = now() WHERE id = (SELECT id FROM datasets "
            "WHERE status = 'published' ORDER BY id OFFSET %s LIMIT 1) RETURNING id::text AS id",
            (n,)).fetchone()
    assert row is not None
    return str(row["id"])


def republish(runtime: Runtime, dataset_id: str) -> None:
    with runtime.database.transaction() as conn:
        conn.execute("UPDATE datasets SET status = 'published', withdrawn_at = NULL, "
                     "version = version + 1, updated_at = now() WHERE id = %s", (dataset_id,))


def _warm(runtime: Runtime, base: str, page_size: int, datasets: int,
          say: Callable[[str], None]) -> dict[str, dict[str, Any]]:
    """Per format: the whole catalogue with every fragment stored, walked four times: first
    with the page cache empty (every page assembled from its stored fragments, its runs
    stored), then again (a repeat harvest of an unchanged catalogue), then after one dataset
    changed (the harvest after an ordinary update), then after one dataset was withdrawn
    (every later page shifted by one). Rounds interleaved across formats, the best one of
    each walk counts."""
    public = runtime.config.public_base_url
    walks = ("warm", "repeat", "changed", "shifted")
    runs: dict[str, dict[str, list[Export]]] = {
        fmt: {walk: [] for walk in walks} for fmt in FORMATS}
    for round_ in range(ROUNDS):
        for n, fmt in enumerate(FORMATS):
            forget_pages(runtime)
            got = {"warm": export_http(base, fmt, page_size, public),
                   "repeat": export_http(base, fmt, page_size, public)}
            at = (round_ * len(FORMATS) + n + 1) * datasets // 10 % datasets
            change_one(runtime, at)
            got["changed"] = export_http(base, fmt, page_size, public)
            # near the start: nearly every page shifts
            gone = withdraw_one(runtime, at // 8)
            got["shifted"] = export_http(base, fmt, page_size, public)
            republish(runtime, gone)
            for walk, export in got.items():
                expected = datasets - 1 if walk == "shifted" else datasets
                if export.datasets != expected:
                    raise RuntimeError(f"{fmt}, {walk}: {export.datasets} of {expected} "
                                       "datasets exported")
                runs[fmt][walk].append(export)
            if got["repeat"].size != got["warm"].size:
                raise RuntimeError(f"{fmt}: the repeat walk sent {got['repeat'].size} bytes, "
                                   f"the first {got['warm'].size}")
            say(f"{fmt}: " + ", ".join(f"{walk} {e.per_s:,.0f}/s" for walk, e in got.items())
                + f" ({got['warm'].size / MB:,.0f} MB)")
    out: dict[str, dict[str, Any]] = {}
    for fmt, by_walk in runs.items():
        entry: dict[str, Any] = {}
        for walk, exports in by_walk.items():
            best = min(exports, key=lambda e: e.seconds)
            entry.update({f"{walk}_per_s": round(best.per_s, 1),
                          f"{walk}_s": round(best.seconds, 2),
                          f"{walk}_rounds_per_s": [round(e.per_s, 1) for e in exports]})
        first = by_walk["warm"][0]
        entry.update({"pages": first.pages, "mb": round(first.size / MB, 1),
                      "bytes_per_dataset": round(first.size / datasets)})
        out[fmt] = entry
    return out


def run(runtime: Runtime, datasets: int = 100_000, small: int = 10_000, page_size: int = 1000,
        sample: int = 10_000, rdflib_sample: int = 500,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark against ``runtime``'s (empty, throw-away) store."""
    say = progress or (lambda message: None)
    small = min(small, datasets)
    for n in range(PROVIDERS):
        try:
            runtime.identities.create_organisation(
                SYSTEM, Organisation(provider(n), f"Provider {n}", "ES"))
        except Exception:  # noqa: S110 - already there from an earlier run
            pass
    made = templates("https://provider.example")
    figures: dict[str, Any] = {
        "datasets": datasets, "small": small, "page_size": page_size,
        "cpus": os.cpu_count(), "load_average_start": [round(x, 2) for x in os.getloadavg()]}

    say(f"loading {small:,} datasets")
    load_s = load(runtime, made, 0, small)
    settle(runtime)
    memory_small = _memory(runtime, say, small)
    say(f"loading {datasets - small:,} more datasets")
    load_s += load(runtime, made, small, datasets)
    settle(runtime)
    figures["load_s"] = round(load_s, 1)
    figures["load_per_s"] = round(datasets / load_s, 1)
    memory_full = _memory(runtime, say, datasets)
    figures["first_export_per_s"] = memory_full["first_export_turtle"]["per_s"]
    figures["rss"] = {
        state: {"small_mb": memory_small[state]["peak_mb"],
                "full_mb": memory_full[state]["peak_mb"],
                "ratio": round(memory_full[state]["peak_mb"] / memory_small[state]["peak_mb"],
                               3)}
        for state in memory_full}
    figures["dumps"] = {"small": memory_small, "full": memory_full}

    with serve(runtime, settle=True) as base:  # settled as `catalogue serve` is
        cold = _cold(runtime, base, page_size, datasets, say)
        settle(runtime)
        warm = _warm(runtime, base, page_size, datasets, say)
    formats = {fmt: {**warm[fmt], **cold[fmt]} for fmt in FORMATS}

    prepared_n = min(sample, datasets)
    say(f"baseline: preparing {prepared_n:,} per-dataset graphs")
    prepared, graphs = prepare(runtime, prepared_n, min(rdflib_sample, prepared_n))
    figures["baseline_sample"] = len(prepared)
    figures["triples_per_dataset"] = round(sum(map(len, prepared)) / len(prepared), 1)
    for fmt in FORMATS:
        alone = oxigraph_alone(prepared, fmt)
        stored = max(stored_alone(runtime, fmt, page_size) for _ in range(ROUNDS))
        entry = formats[fmt]
        entry["oxigraph_alone_per_s"] = round(alone, 1)
        entry["stored_alone_per_s"] = round(stored, 1)
        for walk in ("warm", "repeat", "changed", "shifted", "cold"):
            entry[f"ratio_{walk}"] = round(entry[f"{walk}_per_s"] / alone, 3)
        entry["ratio_stored_alone"] = round(stored / alone, 3)
        say(f"{fmt}: Oxigraph alone {alone:,.0f}/s, stored fragments read alone "
            f"{stored:,.0f}/s")
    figures["formats"] = formats
    figures["ratio_first_export_turtle"] = round(
        figures["first_export_per_s"] / formats["turtle"]["oxigraph_alone_per_s"], 3)
    figures["rdflib_sample"] = len(graphs)
    figures["rdflib_alone_per_s"] = {fmt: round(rdflib_alone(graphs, fmt), 1)
                                     for fmt in ("turtle", "nt")}
    figures["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return figures


def table(figures: dict[str, Any]) -> str:
    """The figures as a plain-text table."""
    lines = [
        f"DCAT export of {figures['datasets']:,} datasets, pages of {figures['page_size']} over "
        "loopback HTTP, datasets/s (× = ratio to Oxigraph alone; target ≥ 0.7)",
        f"{'format':8} {'warm':>8} {'repeat':>8} {'changed':>8} {'shifted':>8} {'cold':>6} "
        f"{'oxigraph':>9} {'stored':>8} {'warm ×':>7} {'repeat ×':>9} {'changed ×':>10} "
        f"{'shifted ×':>10} {'cold ×':>7} {'stored ×':>9} {'MB':>6}"]
    for fmt, e in figures["formats"].items():
        lines.append(f"{fmt:8} {e['warm_per_s']:>8,.0f} {e['repeat_per_s']:>8,.0f} "
                     f"{e['changed_per_s']:>8,.0f} {e['shifted_per_s']:>8,.0f} "
                     f"{e['cold_per_s']:>6,.0f} {e['oxigraph_alone_per_s']:>9,.0f} "
                     f"{e['stored_alone_per_s']:>8,.0f} {e['ratio_warm']:>7.2f} "
                     f"{e['ratio_repeat']:>9.2f} {e['ratio_changed']:>10.2f} "
                     f"{e['ratio_shifted']:>10.2f} {e['ratio_cold']:>7.3f} "
                     f"{e['ratio_stored_alone']:>9.2f} {e['mb']:>6,.0f}")
    first = next(iter(figures["formats"].values()))
    lines += [
        "warm: the whole catalogue, fragments stored, no page stored (every page "
        "assembled); repeat: the same walk again (runs stored); changed: again after one "
        "dataset changed; shifted: again after one dataset near the start was withdrawn "
        f"(best of {ROUNDS}); cold: one provider's "
        f"{first['cold_datasets']:,} datasets, nothing stored; stored: reading and unpacking "
        "the stored fragments alone",
        "first export of the whole catalogue (renders every dataset in all formats): "
        f"{figures['first_export_per_s']:,.0f}/s "
        f"(× {figures['ratio_first_export_turtle']:.3f} of Turtle alone)",
        f"peak RSS of `catalogue export dcat`, {figures['small']:,} → "
        f"{figures['datasets']:,} datasets:"]
    for state, r in figures["rss"].items():
        lines.append(f"  {state:20} {r['small_mb']:>6.0f} MB → {r['full_mb']:>6.0f} MB "
                     f"(× {r['ratio']:.2f})")
    lines.append(f"rdflib alone ({figures['rdflib_sample']} graphs): "
                 + ", ".join(f"{k} {v:,.0f}/s" for k, v in figures["rdflib_alone_per_s"].items()))
    lines.append(f"load: {figures['load_per_s']:,.0f} datasets/s (not part of the figures); "
                 f"load average {figures['load_average_start']} → "
                 f"{figures['load_average_end']}")
    return "\n".join(lines)
