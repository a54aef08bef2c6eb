"""The load test and the all-benchmarks harness at tiny sizes: a real `catalogue serve` process,
embedded PostgreSQL and tantivy, real HTTP clients. Structure, zero errors and consistency
only; no timing thresholds (the machine decides those)."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from catalogue.bench import all as every
from catalogue.bench import load
from catalogue.bench.synthetic import Spec
from catalogue.cli import main
from catalogue.runtime import Runtime

TINY = Spec(providers=4, countries=3, datasets=24, subjects=600, studies=1_800)


@pytest.mark.slow
def test_load_run_mixes_every_operation_without_errors() -> None:
    figures = load.run(TINY, clients=3, duration=4.0, workers=4)
    assert figures["errors"] == 0, {k: v["error_samples"]
                                    for k, v in figures["operations"].items()}
    assert figures["server_alive_at_end"] is True
    assert set(figures["operations"]) == set(load.OPERATIONS)
    total = 0
    for name, op in figures["operations"].items():
        assert op["requests"] > 0, name
        assert 0 < op["p50_ms"] <= op["p95_ms"] <= op["max_ms"], (name, op)
        assert op["per_s"] > 0
        target = load.OPERATIONS[name][1]
        assert op["target_p95_ms"] == target
        assert op["meets_target"] is (None if target is None else op["p95_ms"] <= target)
        total += op["requests"]
    assert figures["requests"] == total
    assert figures["dcat_pages"] >= 1 and figures["clients"] == 3
    assert "budget" in figures["bench_configuration"]
    assert any(line.startswith("cohort_count") for line in load.table(figures))


def test_load_refuses_more_clients_than_its_bound() -> None:
    result = CliRunner().invoke(main, ["bench", "load", "--clients", "500"])
    assert result.exit_code == 2 and "500" in result.output


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
