"""`catalogue bench` (every benchmark): the summary rows and JSON, and a failing benchmark
reported without stopping the others. Tiny sizes; no timing thresholds."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from catalogue.bench import all as every
from catalogue.bench import load
from catalogue.cli import main
from catalogue.runtime import Runtime


class _Boom(AbstractContextManager[Runtime]):
    def __enter__(self) -> Runtime:
        raise RuntimeError("no catalogue for this benchmark")

    def __exit__(self, *exc: Any) -> None:
        return None


def test_a_failing_benchmark_is_reported_and_the_others_still_run(tmp_path: Path) -> None:
    """harvest gets a runtime that cannot start; load (which makes its own catalogue) runs."""
    sizes = {"load": {"clients": 2, "duration": 2.0, "datasets": 12, "subjects": 200,
                      "studies": 600}}
    report = every.run("quick", ["harvest", "load"], lambda: _Boom(), sizes=sizes)
    assert report["failed"] == ["harvest"]
    assert report["benches"]["harvest"]["status"] == "failed"
    assert "no catalogue for this benchmark" in report["benches"]["harvest"]["error"]
    assert report["benches"]["load"]["status"] == "ok"
    assert report["benches"]["load"]["figures"]["errors"] == 0
    benches = [row["bench"] for row in report["rows"]]
    assert benches[0] == "harvest" and report["rows"][0]["measure"].startswith("FAILED")
    assert benches.count("load") == len(load.OPERATIONS) + 1
    lines = every.table(report)
    assert any("harvest: failed" in line for line in lines)
    assert any("load: ok" in line for line in lines)
    json.dumps(report, default=str)  # what `catalogue bench` writes


def test_unknown_benchmark_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["bench", "--only", "harvest,nope"])
    assert result.exit_code == 2 and "nope" in result.output


def test_unknown_size_is_a_clear_error() -> None:
    result = CliRunner().invoke(main, ["bench", "--only", "harvest", "--set", "harvest.nope=1"])
    assert result.exit_code == 2 and "nope" in result.output


def test_bench_runs_the_chosen_benchmarks_and_reports_a_failure(tmp_path: Path) -> None:
    """Two cheap benchmarks through the command: harvest on a small catalogue runs; fhir with
    no patients at all cannot compute a rate and fails; both are in the table and the JSON,
    and the command exits 1."""
    out = tmp_path / "all.json"
    result = CliRunner().invoke(main, [
        "bench", "--scale", "quick", "--only", "fhir,harvest", "--set", "fhir.patients=0",
        "--set", "harvest.datasets=60", "--set", "harvest.page_size=20", "--out", str(out)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    header = next(line for line in lines if line.startswith("bench "))
    for column in ("measure", "value", "baseline", "ratio", "target", "met"):
        assert column in header
    assert any(line.startswith("fhir ") and "FAILED" in line for line in lines)
    harvest_rows = [line for line in lines if line.startswith("harvest ")]
    assert len(harvest_rows) == 4 and "rdflib" in harvest_rows[0]
    assert "Oxigraph streaming" in harvest_rows[2] and "storing" in harvest_rows[3]
    assert any("fhir: failed" in line for line in lines)
    assert any("harvest: ok" in line for line in lines)
    written = json.loads(out.read_text())
    assert written["benchmark"] == "all" and written["scale"] == "quick"
    assert written["failed"] == ["fhir"]
    assert list(written["benches"]) == ["fhir", "harvest"]
    harvest = written["benches"]["harvest"]
    assert harvest["status"] == "ok" and harvest["size"]["datasets"] == 60
    figures = harvest["figures"]
    assert figures["stored"] == 60
    # the steps measured alone: every record read, then stored
    assert figures["store_alone_datasets"] == 60 and figures["read_alone_one_process_s"] > 0
    assert figures["store_alone_datasets_per_s"] > 0
    assert [r["bench"] for r in written["rows"]] == ["fhir"] + ["harvest"] * 4
    ratio = harvest["figures"]["ratio_vs_rdflib_parse"]
    assert written["rows"][1]["ratio"] == ratio and ratio > 0
    assert written["rows"][1]["met"] is (ratio >= 1.0)
