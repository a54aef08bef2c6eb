"""The cohort benchmark on a small population: real PostgreSQL, tantivy or OpenSearch, the API
over HTTP.

Structure and sanity only (no timing thresholds: the machine decides those)."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogue.bench import cohorts
from catalogue.bench.synthetic import Spec
from catalogue.config import Config
from catalogue.errors import ValidationError
from catalogue.runtime import Runtime

SPEC = Spec(providers=4, countries=3, datasets=12, subjects=3_000, studies=9_000, seed=5)


def test_small_run_reports_sane_figures_and_reuse_asks_again(runtime: Runtime) -> None:
    figures = cohorts.run(runtime, SPEC, queries=12, seed=1)
    assert figures["engine"] == "tantivy" and figures["subjects"] == 3_000
    assert 8_000 <= figures["studies"] <= 10_000 and figures["datasets"] == 12
    assert figures["questions"] == 12 and figures["cells_per_question"] == 12
    assert figures["questions_with_a_released_total"] >= 1  # real counts, not all suppressed
    for key in ("generate_subjects_per_s", "index_subjects_per_s", "api_p50_ms", "api_p95_ms",
                "engine_p50_ms", "engine_p95_ms", "ratio_api_engine_p50"):
        assert figures[key] > 0, key
    assert figures["api_target_p95_ms"] == 50.0
    with pytest.raises(ValidationError, match="empty catalogue"):
        cohorts.run(runtime, SPEC, queries=2)
    again = cohorts.run(runtime, SPEC, queries=12, seed=1, reuse=True)
    assert again["reused_population"] is True and "index_s" not in again
    assert again["subjects"] == 3_000 and again["questions"] == 12


@pytest.mark.opensearch
def test_on_opensearch_the_api_is_served_by_a_catalogue_serve_process_of_its_own(
        opensearch_config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Elasticsearch/OpenSearch: the questions go to ``catalogue serve`` in its own process
    (as deployed), the bare requests from this one; both answer every question."""

    def in_process(*args: object, **kwargs: object) -> None:
        raise AssertionError("the API was served from the benchmark's process")

    monkeypatch.setattr(cohorts, "serve", in_process)
    rt = Runtime(opensearch_config).start()
    try:
        figures = cohorts.run(rt, SPEC, queries=12, seed=2)
        assert figures["engine"] == "opensearch" and figures["questions"] == 12
        assert figures["cells_per_question"] == 12 and figures["ratio_target"] == 1.3
        assert figures["questions_with_a_released_total"] >= 1
        assert figures["api_p50_ms"] > 0 and figures["engine_p50_ms"] > 0
        assert (Path(opensearch_config.data_dir) / "serve.log").exists()  # it ran
    finally:
        rt.close()


def test_typical_questions_are_distinct_and_valid() -> None:
    asked = cohorts.questions(50, seed=3)
    assert len({str(q) for q in asked}) == 50
    for question in asked:
        criteria = question["criteria"]["all_of"]
        assert 2 <= len(criteria) <= 4 and question["group_by"] == ["dataset"]
