"""``catalogue bench``: every benchmark in one run, one summary table, one JSON file.

Each benchmark runs in its own throw-away catalogue (as its own subcommand does) and reports its
ratios against a baseline measured in the same run. A benchmark that fails is reported as failed
and the others still run. The summary picks each benchmark's headline figures and the target its
issue set; the JSON keeps every figure.
"""

from __future__ import annotations

import os
import time
import traceback
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from catalogue.runtime import Runtime

RuntimeFactory = Callable[[], AbstractContextManager[Runtime]]

#: benchmark sizes per scale (quick: minutes on a 2-core machine; full: the issues' sizes)
SCALES: dict[str, dict[str, dict[str, Any]]] = {
    "quick": {
        "harvest": {"datasets": 500, "page_size": 100},
        "fhir": {"patients": 300},
        "omop": {"rows": 20_000},
        "indexing": {"datasets": 2_000, "subjects": 10_000},
        "search": {"datasets": 2_000, "queries": 20},
        "cohorts": {"subjects": 20_000, "studies": 60_000, "datasets": 200, "queries": 20},
        "export": {"datasets": 1_000, "small": 300, "sample": 500, "rdflib_sample": 100},
        "load": {"clients": 4, "duration": 15.0, "datasets": 100, "subjects": 5_000,
                 "studies": 15_000, "think_ms": 500.0},
    },
    "standard": {
        "harvest": {"datasets": 2_000, "page_size": 100},
        "fhir": {"patients": 1_000},
        "omop": {"rows": 200_000},
        "indexing": {"datasets": 20_000, "subjects": 100_000},
        "search": {"datasets": 20_000, "queries": 50},
        "cohorts": {"subjects": 200_000, "studies": 600_000, "datasets": 1_000, "queries": 40},
        "export": {"datasets": 20_000, "small": 5_000, "sample": 5_000, "rdflib_sample": 300},
        "load": {"clients": 8, "duration": 60.0, "datasets": 1_000, "subjects": 50_000,
                 "studies": 150_000, "think_ms": 500.0},
    },
    "full": {
        "harvest": {"datasets": 10_000, "page_size": 100},
        "fhir": {"patients": 5_000},
        "omop": {"rows": 1_000_000},
        "indexing": {"datasets": 100_000, "subjects": 1_000_000},
        "search": {"datasets": 100_000, "queries": 100},
        "cohorts": {"subjects": 1_000_000, "studies": 3_000_000, "datasets": 1_000,
                    "queries": 200},
        "export": {"datasets": 100_000, "small": 10_000, "sample": 10_000, "rdflib_sample": 500},
        "load": {"clients": 8, "duration": 60.0, "datasets": 1_000, "subjects": 200_000,
                 "studies": 600_000, "think_ms": 500.0},
    },
}
BENCHES = tuple(SCALES["quick"])


@dataclass(frozen=True)
class Row:
    bench: str
    measure: str
    value: Any
    baseline: Any = None
    ratio: Any = None
    target: str = ""
    met: bool | None = None


def _run_one(name: str, size: dict[str, Any], runtime: RuntimeFactory,
             say: Callable[[str], None]) -> dict[str, Any]:
    if name == "harvest":
        from catalogue.bench import harvest
        with runtime() as rt:
            return harvest.run(rt, datasets=size["datasets"], page_size=size["page_size"])
    if name == "fhir":
        from catalogue.bench import fhir
        with runtime() as rt:
            return fhir.run(rt, patients=size["patients"])
    if name == "omop":
        from catalogue.bench import omop
        with runtime() as rt:
            return omop.run(rt, rows=size["rows"], progress=say)
    if name == "indexing":
        from catalogue.bench import indexing
        with runtime() as rt:
            return indexing.run(rt, datasets=size["datasets"], subjects=size["subjects"],
                                progress=say)
    if name == "search":
        from catalogue.bench import search
        os.environ.setdefault("CATALOGUE_SEARCH_INDEX_PREFIX", "catalogue-bench-")
        with runtime() as rt:
            return search.run(rt, datasets=size["datasets"], queries=size["queries"],
                              cleanup=True, progress=say)
    if name == "cohorts":
        from catalogue.bench import cohorts
        from catalogue.bench.synthetic import Spec
        spec = Spec(datasets=size["datasets"], subjects=size["subjects"],
                    studies=size["studies"])
        with runtime() as rt:
            return cohorts.run(rt, spec, queries=size["queries"], progress=say)
    if name == "export":
        from catalogue.bench import export
        with runtime() as rt:
            return export.run(rt, datasets=size["datasets"], small=size["small"],
                              sample=size["sample"], rdflib_sample=size["rdflib_sample"],
                              progress=say)
    if name == "load":
        from catalogue.bench import load
        from catalogue.bench.synthetic import Spec
        spec = Spec(datasets=size["datasets"], subjects=size["subjects"],
                    studies=size["studies"])
        return load.run(spec, clients=size["clients"], duration=size["duration"], progress=say,
                        think_ms=size.get("think_ms", 0.0))
    raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")


def run(scale: str, only: list[str] | None, runtime: RuntimeFactory,
        progress: Callable[[str], None] | None = None,
        sizes: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """Run the chosen benchmarks at ``scale`` (``sizes`` overrides per benchmark); return
    ``{"scale", "benches": {name: {"status", "seconds", "figures" | "error"}}, "rows"}``."""
    say = progress or (lambda _message: None)
    chosen = list(only or BENCHES)
    for name in [*chosen, *(sizes or {})]:
        if name not in BENCHES:
            raise ValueError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHES)}")
    for name, size in (sizes or {}).items():
        for key in size:
            if key not in SCALES[scale][name]:
                raise ValueError(f"{name} has no size {key!r}; it has "
                                 f"{', '.join(SCALES[scale][name])}")
    results: dict[str, Any] = {}
    for name in chosen:
        size = {**SCALES[scale][name], **(sizes or {}).get(name, {})}
        say(f"== {name} {size}")
        started = time.perf_counter()
        try:
            figures = _run_one(name, size, runtime, say)
            failed = name == "load" and bool(figures.get("errors"))
            results[name] = {"status": "failed" if failed else "ok", "size": size,
                             "seconds": round(time.perf_counter() - started, 1),
                             "figures": figures}
            if failed:
                results[name]["error"] = f"{figures['errors']} failed requests"
        except Exception as exc:  # one benchmark's failure must not stop the others
            results[name] = {"status": "failed", "size": size,
                             "seconds": round(time.perf_counter() - started, 1),
                             "error": f"{type(exc).__name__}: {exc}",
                             "traceback": traceback.format_exc(limit=8)}
            say(f"   {name} failed: {type(exc).__name__}: {exc}")
    rows = [row.__dict__ for name in chosen for row in headline(name, results[name])]
    return {"scale": scale, "benches": results, "rows": rows,
            "failed": [n for n in chosen if results[n]["status"] != "ok"],
            "load_average_end": [round(x, 2) for x in os.getloadavg()], "cpus": os.cpu_count()}


def _at_least(value: Any, target: float) -> bool | None:
    return None if value is None else value >= target


def _rate(count: Any, seconds: Any) -> float | None:
    return None if not count or not seconds else round(count / seconds, 1)


def _ratio(value: Any, baseline: Any) -> float | None:
    return None if not value or not baseline else round(value / baseline, 3)


def _at_most(value: Any, target: float) -> bool | None:
    return None if value is None else value <= target


def headline(name: str, result: dict[str, Any]) -> list[Row]:
    """The summary rows of one benchmark's figures."""
    if result["status"] != "ok" and "figures" not in result:
        return [Row(name, "FAILED: " + result.get("error", "?")[:80], None)]
    f = result["figures"]
    if name == "harvest":
        return [
            Row(name, "harvest datasets/s vs rdflib parsing alone",
                f.get("harvest_datasets_per_s"), _rate(f.get("datasets"), f.get("rdflib_parse_s")),
                f.get("ratio_vs_rdflib_parse"),
                "≥ 1.0×", _at_least(f.get("ratio_vs_rdflib_parse"), 1.0)),
            Row(name, "harvest datasets/s vs the general parser (Oxigraph into rdflib) alone",
                f.get("harvest_datasets_per_s"),
                _rate(f.get("datasets"), f.get("fastest_parse_s")),
                f.get("ratio_vs_fastest_parse"), "≥ 0.5×",
                _at_least(f.get("ratio_vs_fastest_parse"), 0.5)),
            Row(name, "harvest datasets/s vs the fastest parser (Oxigraph streaming) alone",
                f.get("harvest_datasets_per_s"),
                _rate(f.get("datasets"), f.get("oxigraph_raw_parse_s")),
                f.get("ratio_vs_oxigraph_raw_parse"), "≥ 0.5×",
                _at_least(f.get("ratio_vs_oxigraph_raw_parse"), 0.5)),
            Row(name, "storing the read records alone vs the same parser (the harvest's bound)",
                f.get("store_alone_datasets_per_s"),
                _rate(f.get("datasets"), f.get("oxigraph_raw_parse_s")),
                f.get("ratio_store_alone_vs_oxigraph_raw_parse")),
        ]
    if name == "fhir":
        return [
            Row(name, "FHIR ingest resources/s vs fhir.resources validation, per core",
                f.get("ingest_resources_per_s"), f.get("validation_alone_resources_per_s"),
                f.get("ratio_ingest_vs_validation_per_core"), "≥ 0.5×",
                _at_least(f.get("ratio_ingest_vs_validation_per_core"), 0.5)),
            Row(name, "FHIR first ingest studies/s (every resource validated)",
                f.get("ingest_studies_per_s")),
            Row(name, "FHIR daily ingest studies/s (1 study in 10 changed, the rest skipped "
                "by hash)", f.get("daily_studies_per_s"), None, None, "≥ 1,000/s",
                _at_least(f.get("daily_studies_per_s"), 1000)),
            Row(name, "FHIR unchanged re-ingest studies/s", f.get("reingest_studies_per_s")),
        ]
    if name == "omop":
        return [Row(name, "image_occurrence rows/s vs a plain cursor scan",
                    f.get("ingest_rows_per_s"), f.get("baseline_scan_rows_per_s"),
                    f.get("ratio_vs_baseline_scan"), "≥ 20,000 rows/s",
                    _at_least(f.get("ingest_rows_per_s"), 20_000))]
    if name == "indexing":
        rows = []
        for index in ("datasets", "subjects"):
            found = f[index]
            target = f"≥ {found['target_docs_per_s']:,}/s"
            rows.append(Row(name, f"{index} index rebuild docs/s vs the engine's bulk alone",
                            found["rebuild_docs_per_s"], found["engine_alone_docs_per_s"],
                            found["ratio_rebuild_vs_engine_alone"], target,
                            found["meets_target"]))
            if "engine_json_only_docs_per_s" in found:  # tantivy: its writer's own ceiling
                rows.append(Row(name, f"{index} index rebuild docs/s vs tantivy's writer "
                                "alone (JSON documents, one commit)",
                                found["rebuild_docs_per_s"], found["engine_json_only_docs_per_s"],
                                found["ratio_rebuild_vs_engine_json_only"], target,
                                found["meets_target"]))
        return rows
    if name == "search":
        tantivy = f.get("engine") == "tantivy"
        return [
            Row(name, f"API p95 ms vs the engine alone ({f.get('engine')})", f.get("api_p95_ms"),
                f.get("engine_p95_ms"), f.get("ratio_api_engine_p95"),
                "p95 ≤ 25 ms" if tantivy else "≤ 1.3×, p95 ≤ 50 ms",
                _at_most(f.get("api_p95_ms"), 25) if tantivy else
                (_at_most(f.get("ratio_api_engine_p95"), 1.3) and
                 _at_most(f.get("api_p95_ms"), 50))),
            Row(name, "index build docs/s vs the engine's bulk calls alone",
                f.get("index_total_docs_per_s"), f.get("index_bulk_docs_per_s"),
                _ratio(f.get("index_total_docs_per_s"), f.get("index_bulk_docs_per_s")),
                "≥ 50,000/s" if tantivy else "≥ 5,000/s",
                _at_least(f.get("index_total_docs_per_s"), 50_000 if tantivy else 5_000)),
            Row(name, "web search page p95 ms vs the API", f.get("web_p95_ms"),
                f.get("api_p95_ms"), f.get("ratio_web_api_p95"), "p95 ≤ 100 ms",
                _at_most(f.get("web_p95_ms"), 100)),
            Row(name, "search page weight bytes", f.get("page_weight_bytes"),
                f.get("page_weight_budget_bytes"), f.get("page_weight_budget_ratio"),
                "≤ 300 KB", f.get("page_weight_meets_budget")),
        ]
    if name == "cohorts":
        return [Row(name, f"cohort count API p95 ms vs the bare engine ({f.get('engine')})",
                    f.get("api_p95_ms"), f.get("engine_p95_ms"), f.get("ratio_api_engine_p95"),
                    f"p95 ≤ {f.get('api_target_p95_ms')} ms", f.get("api_meets_p95_target"))]
    if name == "export":
        rows = []
        for fmt, figures in (f.get("formats") or {}).items():
            rows.append(Row(name, f"DCAT {fmt} datasets/s vs Oxigraph alone (warm: pages "
                            "assembled from stored fragments)",
                            figures.get("warm_per_s"), figures.get("oxigraph_alone_per_s"),
                            figures.get("ratio_warm"), "≥ 0.7×",
                            _at_least(figures.get("ratio_warm"), 0.7)))
            for walk, what in (("repeat", "unchanged catalogue"),
                               ("changed", "after one dataset changed"),
                               ("shifted", "after one dataset withdrawn")):
                rows.append(Row(name, f"DCAT {fmt} datasets/s vs Oxigraph alone ({walk}: "
                                f"{what}, runs stored)",
                                figures.get(f"{walk}_per_s"),
                                figures.get("oxigraph_alone_per_s"),
                                figures.get(f"ratio_{walk}"), "≥ 0.7×",
                                _at_least(figures.get(f"ratio_{walk}"), 0.7)))
        rss = (f.get("rss") or {}).get("warm_turtle", {})
        rows.append(Row(name, "peak RSS, small vs full catalogue (MB)", rss.get("full_mb"),
                        rss.get("small_mb"), rss.get("ratio"), "flat", None))
        return rows
    if name == "load":
        paced = (f"{f.get('clients')} clients, {f.get('think_ms'):g} ms think"
                 if f.get("think_ms") else f"{f.get('clients')} clients, closed loop")
        rows = [Row(name, f"{op} p95 ms, {paced} vs one unloaded",
                    o["p95_ms"], o.get("unloaded_p95_ms"), o.get("ratio_p95_vs_unloaded"),
                    "-" if o["target_p95_ms"] is None else
                    f"p95 ≤ {o['target_p95_ms']:.0f} ms", o["meets_target"])
                for op, o in f["operations"].items()]
        rows.append(Row(name, "requests/s, errors", f.get("per_s"), None, None, "0 errors",
                        f.get("errors") == 0))
        return rows
    return []


def table(report: dict[str, Any]) -> list[str]:
    def show(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
        if isinstance(value, int):
            return f"{value:,}"
        return str(value)

    def ratio(value: Any) -> str:
        return "-" if value is None else f"{value:.3f}" if value < 10 else f"{value:,.1f}"

    lines = [f"{'bench':8} {'measure':62} {'value':>10} {'baseline':>10} {'ratio':>7} "
             f"{'target':>17}  met"]
    for row in report["rows"]:
        met = {None: "-", True: "yes", False: "NO"}[row["met"]]
        lines.append(f"{row['bench']:8} {row['measure'][:62]:62} {show(row['value']):>10} "
                     f"{show(row['baseline'])[:10]:>10} {ratio(row['ratio']):>7} "
                     f"{row['target'][:17]:>17}  {met}")
    for name, result in report["benches"].items():
        lines.append(f"  {name}: {result['status']} in {result['seconds']} s"
                     + (f" ({result['error']})" if result.get("error") else ""))
    return lines
