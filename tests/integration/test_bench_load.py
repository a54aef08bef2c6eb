"""The load test at a tiny size: a real `catalogue serve` process, embedded PostgreSQL and
tantivy, real HTTP clients. Structure, zero errors and consistency only; no timing thresholds
(the machine decides those)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalogue.bench import load
from catalogue.bench.synthetic import Spec
from catalogue.cli import main

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
    # the unloaded baseline of the same run, and the client side's own cost, are reported
    assert figures["unloaded"]["requests"] > 0 and figures["unloaded"]["errors"] == 0
    for op in figures["operations"].values():
        assert op["unloaded_p95_ms"] is None or op["unloaded_p95_ms"] > 0
    assert figures["client_cpu_ms_per_request"] > 0
    assert 0 < figures["client_cpu_share_of_machine"] < 1
    assert figures["server_cpu_s"] > 0


@pytest.mark.slow
def test_bench_load_command_writes_its_json(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    result = CliRunner().invoke(main, [
        "bench", "load", "--clients", "2", "--duration", "2", "--workers", "4",
        "--datasets", "12", "--subjects", "200", "--studies", "600", "--providers", "3",
        "--think", "20", "--json", str(out)])
    assert result.exit_code == 0, result.output
    assert "dataset_api" in result.output and "unloaded" in result.output
    written = json.loads(out.read_text())
    assert written["benchmark"] == "load" and written["errors"] == 0
    assert set(written["operations"]) == set(load.OPERATIONS)
    # paced: every client waits a think time between requests (the default, 500 ms, is the
    # run the latency targets are judged on)
    assert written["think_ms"] == 20 and written["mode"].startswith("paced")
    assert written["requests"] > 0


def test_load_refuses_more_clients_than_its_bound() -> None:
    result = CliRunner().invoke(main, ["bench", "load", "--clients", "500"])
    assert result.exit_code == 2 and "500" in result.output
