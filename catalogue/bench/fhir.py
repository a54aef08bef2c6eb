"""FHIR NDJSON ingest benchmark.

Measured in one run, on the same Bulk Data files (Patient, ImagingStudy, Condition):
- first, the start of the harvest workers' fork server (``worker_start_once_s``): a running
  catalogue pays it at its first large harvest, so the ingest below is timed with it warm, as in a
  catalogue that has harvested before; a one-shot ``catalogue harvest fhir`` pays it inside;
- baseline: ``fhir.resources`` validating every resource alone, in one process (one core), and
  orjson parsing alone;
- the first ingest (read, hash, validate in worker processes, map, pseudonymise, write,
  aggregates) through the harvest service, as studies/s and resources/s;
- a re-ingest of the unchanged files (every resource skipped by its keyed hash);
- a daily run: the same files with one ImagingStudy in ten changed (validated, mapped and
  updated; the rest skipped by hash).
Ratios: ingest resources/s over validation resources/s, per core used.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from catalogue.fhir import sniff_release, validate
from catalogue.harvest import pools
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.testing.fhir_population import population, write_ndjson


def _lines(folder: Path) -> list[bytes]:
    lines: list[bytes] = []
    for path in sorted(folder.glob("*.ndjson")):
        lines.extend(line for line in path.read_bytes().splitlines() if line.strip())
    return lines


def _nothing() -> None:
    pass


def _change_every_tenth_study(folder: Path) -> int:
    """Rewrite the NDJSON files in ``folder`` with one ImagingStudy in ten described anew;
    returns how many changed."""
    changed = seen = 0
    for path in sorted(folder.glob("*.ndjson")):
        out = []
        for line in path.read_bytes().splitlines():
            if line.strip() and b'"ImagingStudy"' in line:
                resource = orjson.loads(line)
                if resource.get("resourceType") == "ImagingStudy":
                    seen += 1
                    if seen % 10 == 1:
                        resource["description"] = f"Revised report {seen}"
                        line = orjson.dumps(resource)
                        changed += 1
            out.append(line)
        path.write_bytes(b"\n".join(out) + b"\n")
    return changed


def run(runtime: Runtime, patients: int = 5000, source: str | None = None,
        realistic: bool = True) -> dict[str, Any]:
    """Ingest ``source`` (a folder of NDJSON files, e.g. Synthea's Bulk Data output) or a
    generated population of ``patients`` (realistic resources unless ``realistic`` is False:
    see :mod:`catalogue.testing.fhir_population`) into ``runtime``'s store; return figures and
    ratios."""
    # a running catalogue's harvest workers are forked from a warm fork server (started by its
    # first large harvest): its start is measured here, once, not inside the ingest
    started = time.perf_counter()
    with pools.pool(1, _nothing, ()) as warm:
        warm.submit(_nothing).result()
    workers_s = time.perf_counter() - started
    try:
        runtime.identities.create_organisation(SYSTEM, Organisation("bench-org", "Bench", "ES"))
    except Exception:  # noqa: S110 - already there from an earlier run
        pass
    runtime.datasets.save(SYSTEM, Dataset(identifier="bench-fhir", organisation_id="bench-org",
                                          title={"en": "FHIR benchmark"},
                                          status=DatasetStatus.PUBLISHED))
    with tempfile.TemporaryDirectory(prefix="bench-fhir-") as tmp:
        folder = Path(tmp) / "bulk"  # a copy of a given source: the daily run rewrites it
        if source is None:
            write_ndjson(population(patients, seed=1, realistic=realistic), folder)
        else:
            folder.mkdir()
            for path in Path(source).glob("*.ndjson"):
                shutil.copyfile(path, folder / path.name)
        lines = _lines(folder)
        started = time.perf_counter()
        resources = [orjson.loads(line) for line in lines]
        parse_s = time.perf_counter() - started
        kept = [r for r in resources
                if r.get("resourceType") in ("Patient", "ImagingStudy", "Condition")]
        studies = sum(1 for r in kept if r["resourceType"] == "ImagingStudy")
        started = time.perf_counter()
        invalid = 0
        study_s = 0.0  # of which ImagingStudies (timed one by one: each takes about 1 ms)
        for resource in kept:
            began = time.perf_counter()
            invalid += bool(validate(sniff_release(resource) or "R4", resource))
            if resource["resourceType"] == "ImagingStudy":
                study_s += time.perf_counter() - began
        validate_s = time.perf_counter() - started

        started = time.perf_counter()
        first = runtime.harvest.run_url(SYSTEM, "fhir", str(folder), "bench-org",
                                        dataset="bench-fhir")
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        again = runtime.harvest.run_url(SYSTEM, "fhir", str(folder), "bench-org",
                                        dataset="bench-fhir")
        again_s = time.perf_counter() - started
        revised = _change_every_tenth_study(folder)
        started = time.perf_counter()
        daily = runtime.harvest.run_url(SYSTEM, "fhir", str(folder), "bench-org",
                                        dataset="bench-fhir")
        daily_s = time.perf_counter() - started
    cores = min(2, os.cpu_count() or 1)
    validate_rate = len(kept) / validate_s
    ingest_rate = len(kept) / ingest_s
    return {
        "source": source or (f"generated population of {patients} patients, "
                             f"{'realistic' if realistic else 'lean'} resources"),
        "resources": len(kept),
        "imaging_studies": studies,
        "invalid_in_baseline": invalid,
        "ingest_status": first.status,
        "ingest_counts": first.counts,
        "orjson_parse_resources_per_s": round(len(resources) / parse_s, 1),
        "validation_alone_resources_per_s": round(validate_rate, 1),
        "validation_alone_ms_per_resource": round(validate_s / len(kept) * 1000, 3),
        "validation_alone_ms_per_imaging_study": round(study_s / max(studies, 1) * 1000, 3),
        "worker_start_once_s": round(workers_s, 3),
        "ingest_s": round(ingest_s, 3),
        "ingest_resources_per_s": round(ingest_rate, 1),
        "ingest_studies_per_s": round(studies / ingest_s, 1),
        "cores": cores,
        "ratio_ingest_vs_validation": round(ingest_rate / validate_rate, 3),
        "ratio_ingest_vs_validation_per_core": round(ingest_rate / cores / validate_rate, 3),
        "reingest_unchanged_s": round(again_s, 3),
        "reingest_counts": again.counts,
        "reingest_studies_per_s": round(studies / again_s, 1),
        "daily_changed_studies": revised,
        "daily_s": round(daily_s, 3),
        "daily_counts": daily.counts,
        "daily_studies_per_s": round(studies / daily_s, 1),
        "targets": "ratio per core >= 0.5; >= 1000 studies/s",
    }
