"""`catalogue bench fhir` on a tiny population: the ingest it times is complete, the re-ingest
writes nothing, the daily run updates exactly what changed, and the figures are consistent with
each other; no timing thresholds."""

from __future__ import annotations

import pytest

from catalogue.bench import fhir
from catalogue.runtime import Runtime
from catalogue.testing.fhir_population import population


@pytest.mark.parametrize("realistic", [True, False])
def test_small_run_ingests_everything_once_and_reports_its_ratios(
        runtime: Runtime, realistic: bool) -> None:
    figures = fhir.run(runtime, patients=150, realistic=realistic)
    pop = population(150, seed=1, realistic=realistic)
    assert figures["source"].endswith("realistic resources" if realistic else "lean resources")
    assert figures["resources"] == len(pop.resources())
    assert figures["imaging_studies"] == len(pop.studies)
    assert figures["invalid_in_baseline"] == 0
    assert figures["ingest_status"] == "completed"
    counts = figures["ingest_counts"]
    assert counts["seen"] == counts["created"] == len(pop.resources())
    again = figures["reingest_counts"]
    assert again["unchanged"] == len(pop.resources()) and again["created"] == 0
    assert again["updated"] == again["deleted"] == 0
    # the daily run: one ImagingStudy in ten changed, each updated once, the rest skipped
    daily = figures["daily_counts"]
    assert figures["daily_changed_studies"] == -(-len(pop.studies) // 10)
    assert daily["updated"] == figures["daily_changed_studies"]
    assert daily["unchanged"] == len(pop.resources()) - daily["updated"]
    assert daily["created"] == daily["deleted"] == daily["invalid"] == 0
    assert figures["worker_start_once_s"] > 0
    rate = figures["ingest_resources_per_s"]
    assert rate == pytest.approx(figures["resources"] / figures["ingest_s"], rel=0.01)
    assert figures["ratio_ingest_vs_validation"] == pytest.approx(
        rate / figures["validation_alone_resources_per_s"], rel=0.01)
    assert figures["ratio_ingest_vs_validation_per_core"] == pytest.approx(
        figures["ratio_ingest_vs_validation"] / figures["cores"], rel=0.01)
    assert figures["validation_alone_ms_per_imaging_study"] > 0
    with runtime.database.transaction() as conn:
        row = conn.execute("SELECT count(*) AS n, max(instance_count) AS most "
                           "FROM imaging_studies").fetchone()
    assert row is not None and row["n"] == len(pop.studies)
    assert (row["most"] >= 40) == realistic
