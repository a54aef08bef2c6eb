#!/usr/bin/env python3
"""Generate a synthetic FHIR R4 population with Synthea, keeping Patient, ImagingStudy, Condition.

Synthea (Apache-2.0, https://github.com/synthetichealth/synthea) comes from Maven Central: the
first run copies ``org.mitre.synthea:synthea`` and its runtime dependencies (~200 MB) with
``mvn dependency:copy-dependencies`` (deploy/synthea/pom.xml) into a cache folder; later runs
are offline. Needs ``java`` 11+ and, for that first run, ``mvn``.

    python3 scripts/synthea.py --patients 1000 --seed 42 --out /tmp/synthea-1000

writes ``Patient.ndjson``, ``ImagingStudy.ndjson`` and ``Condition.ndjson`` (FHIR R4 Bulk Data
NDJSON, one resource a line) into ``--out``. Patients keep Synthea's identifying data (names,
identifiers, addresses, exact birth dates): the catalogue must drop it at ingest, and tests check
that it does. By default every Synthea module runs: the cancer modules alone (``--modules
'lung_cancer*:breast_cancer*'``) gave imaging to 6 of 1,006 patients (seed 42), all chest CT
from the lung cancer module; the breast cancer module records mammograms as Procedures. All
modules give DX, CR, US and CT studies to ~75 % of patients and cancer Conditions to ~6 %.

``--only-patients-with imaging|cancer|imaging-or-cancer`` drops the other patients (and their
resources); ``--max-bytes`` then keeps whole patients while the three files fit (cancer patients
first), ``--max-patient-bytes`` leaves out patients with very many chest CTs. These cut the
small sample kept in the repository (see tests/data/fhir/synthea/SOURCE.md). Standard library
only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POM = ROOT / "deploy" / "synthea" / "pom.xml"
SYNTHEA_VERSION = "3.3.0"
RESOURCE_TYPES = ("Patient", "ImagingStudy", "Condition")
CACHE_HOME = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
DEFAULT_CACHE = CACHE_HOME / "catalogue" / "synthea"
DEFAULT_END_DATE = "20250601"  # fixed, so that a seed gives the same population on any day
CANCER_WORDS = re.compile(r"malignant|carcinoma|cancer|neoplasm|lymphoma|leukemia|melanoma", re.I)

# Synthea settings (any key of its synthea.properties); --years-of-history is added at run time.
SETTINGS = {
    "exporter.fhir.export": "true",
    "exporter.fhir.bulk_data": "true",  # NDJSON per resource type, not one Bundle per patient
    "exporter.fhir.included_resources": ",".join(RESOURCE_TYPES),
    "exporter.fhir_stu3.export": "false",
    "exporter.fhir_dstu2.export": "false",
    "exporter.hospital.fhir.export": "false",
    "exporter.practitioner.fhir.export": "false",
    "exporter.groups.fhir.export": "false",
    "exporter.metadata.export": "false",
    "exporter.ccda.export": "false",
    "exporter.csv.export": "false",
    "exporter.cpcds.export": "false",
    "exporter.bfd.export": "false",
    "exporter.text.export": "false",
    "exporter.clinical_note.export": "false",
    "exporter.json.export": "false",
    "exporter.symptoms.csv.export": "false",
    "exporter.symptoms.text.export": "false",
    "exporter.pretty_print": "false",
    "generate.log_patients.detail": "simple",  # one line per patient: our progress counter
}


class SyntheaError(Exception):
    """Synthea could not be fetched or run; the message says what to do."""


def ensure_jars(cache: Path, version: str = SYNTHEA_VERSION) -> Path:
    """Return the folder holding Synthea's jars, fetching them from Maven Central if needed."""
    lib = cache / version / "lib"
    if (lib / f"synthea-{version}.jar").is_file():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise SyntheaError(
            f"`mvn` (Apache Maven) is not on PATH; it is needed once to fetch Synthea {version} "
            f"from Maven Central into {lib}. Install it (Debian: apt-get install maven) or "
            "copy the jars there by hand."
        )
    lib.parent.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix="lib.", dir=lib.parent))
    print(f"fetching org.mitre.synthea:synthea:{version} and its dependencies from Maven "
          f"Central into {lib} (once, ~200 MB)...", file=sys.stderr)
    cmd = [mvn, "-q", "-B", "-f", str(POM), f"-Dsynthea.version={version}",
           "dependency:copy-dependencies", "-DincludeScope=runtime",
           f"-DoutputDirectory={partial}"]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not (partial / f"synthea-{version}.jar").is_file():
        shutil.rmtree(partial, ignore_errors=True)
        output = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise SyntheaError(
            f"Maven could not fetch org.mitre.synthea:synthea:{version} (exit status "
            f"{result.returncode}). Is Maven Central reachable (proxy: ~/.m2/settings.xml)?\n"
            f"command: {' '.join(cmd)}\n{output}"
        )
    shutil.rmtree(lib, ignore_errors=True)
    partial.chmod(0o755)
    partial.rename(lib)  # atomic: a half-finished fetch never looks complete
    return lib


def find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise SyntheaError(
            "`java` is not on PATH; Synthea needs a Java 11+ runtime "
            "(Debian: apt-get install openjdk-17-jre-headless)."
        )
    return java


def run_synthea(args: argparse.Namespace, java: str, lib: Path, work: Path) -> Path:
    """Run Synthea in ``work``; return the folder with its NDJSON files."""
    settings = dict(SETTINGS)
    settings["exporter.baseDirectory"] = str(work / "output")
    settings["exporter.years_of_history"] = str(args.years_of_history)
    config = work / "catalogue-synthea.properties"
    config.write_text("".join(f"{key} = {value}\n" for key, value in settings.items()),
                      encoding="utf-8")
    cmd = [java, f"-Xmx{args.java_heap}", "-cp", f"{lib}{os.sep}*", "App"]
    cmd += ["-c", str(config), "-s", str(args.seed), "-cs", str(args.seed),
            "-p", str(args.patients), "-r", args.end_date, "-e", args.end_date]
    if args.modules:
        cmd += ["-m", args.modules]
    if args.ages:
        cmd += ["-a", args.ages]
    cmd += [args.state]
    log_path = work / "synthea.log"
    generated = 0
    with log_path.open("w", encoding="utf-8") as log:
        proc = subprocess.Popen(cmd, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, encoding="utf-8", errors="replace")
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            if re.match(r"\d+ -- ", line):
                generated += 1
                if generated % 100 == 0 and not args.quiet:
                    print(f"  {generated} patients generated", file=sys.stderr)
        status = proc.wait()
    if status != 0:
        tail = "\n".join(log_path.read_text(encoding="utf-8").splitlines()[-20:])
        raise SyntheaError(f"Synthea failed (exit status {status}):\n{tail}")
    fhir = work / "output" / "fhir"
    if not fhir.is_dir():
        raise SyntheaError(f"Synthea wrote no FHIR output into {fhir}; see its log:\n"
                           + log_path.read_text(encoding="utf-8")[-2000:])
    return fhir


def _subject_id(line: str) -> str:
    resource = json.loads(line)
    if resource["resourceType"] == "Patient":
        return str(resource["id"])
    return str(resource["subject"]["reference"]).rsplit("/", 1)[-1]


def _read_lines(path: Path) -> list[str]:
    if not path.is_file():
        return []
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def select_patients(lines: dict[str, list[str]], only: str | None, max_bytes: int | None,
                    max_patient_bytes: int | None = None) -> set[str] | None:
    """Ids of the patients to keep, or None for all of them.

    With ``max_bytes``, whole patients are kept while the output fits: patients with a cancer
    Condition first, smallest first (so that as many as possible fit, the lung cancer ones with
    their large chest CTs last), then the others in id order (a random sample). Patients above
    ``max_patient_bytes`` are left out."""
    if only is None and max_bytes is None and max_patient_bytes is None:
        return None
    with_imaging = {_subject_id(line) for line in lines["ImagingStudy"]}
    with_cancer = {_subject_id(line) for line in lines["Condition"]
                   if CANCER_WORDS.search(json.dumps(json.loads(line)["code"]))}
    wanted = {"imaging": with_imaging, "cancer": with_cancer,
              "imaging-or-cancer": with_imaging | with_cancer}
    candidates = wanted[only] if only else {_subject_id(x) for x in lines["Patient"]}
    if max_bytes is None and max_patient_bytes is None:
        return candidates
    size: dict[str, int] = {}
    for resource_lines in lines.values():
        for line in resource_lines:
            key = _subject_id(line)
            size[key] = size.get(key, 0) + len(line.encode("utf-8")) + 1
    order = sorted(candidates & with_cancer, key=lambda p: (size.get(p, 0), p))
    order += sorted(candidates - with_cancer)
    keep: set[str] = set()
    total = 0
    for patient in order:
        if max_patient_bytes is not None and size.get(patient, 0) > max_patient_bytes:
            continue
        if max_bytes is None or total + size.get(patient, 0) <= max_bytes:
            keep.add(patient)
            total += size.get(patient, 0)
    return keep


def write_ndjson(path: Path, lines: Iterable[str]) -> int:
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for line in lines:
            out.write(line + "\n")
            count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Generate FHIR R4 Patient/ImagingStudy/Condition NDJSON with Synthea.")
    parser.add_argument("--patients", type=int, required=True,
                        help="living patients to generate (Synthea adds the deceased ones)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, required=True, help="folder for the NDJSON files")
    parser.add_argument("--modules", default=None,
                        help="Synthea module filter (-m), e.g. 'lung_cancer*:breast_cancer*'; "
                        "default: all modules")
    parser.add_argument("--ages", default=None, help="age range MIN-MAX (Synthea -a)")
    parser.add_argument("--years-of-history", type=int, default=5,
                        help="years of records exported before the end of each life or the "
                        "end date (0: everything); default 5")
    parser.add_argument("--end-date", default=DEFAULT_END_DATE,
                        help="Synthea's 'today' (its -r reference and -e end date), YYYYMMDD; "
                        f"default {DEFAULT_END_DATE}")
    parser.add_argument("--state", default="Massachusetts")
    parser.add_argument("--only-patients-with", choices=("imaging", "cancer", "imaging-or-cancer"),
                        help="drop patients without an ImagingStudy / cancer Condition")
    parser.add_argument("--max-bytes", type=int, default=None,
                        help="keep whole patients (cancer patients first) while the output fits")
    parser.add_argument("--max-patient-bytes", type=int, default=None,
                        help="leave out patients whose resources take more than this")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE,
                        help=f"where the Synthea jars are kept (default {DEFAULT_CACHE})")
    parser.add_argument("--java-heap", default="4g")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep Synthea's working folder (all its output and log)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.patients < 1:
        parser.error("--patients must be at least 1")

    started = time.monotonic()
    try:
        java = find_java()  # before a 200 MB download that could not run
        lib = ensure_jars(args.cache_dir)
        work = Path(tempfile.mkdtemp(prefix="synthea-"))
        try:
            fhir = run_synthea(args, java, lib, work)
            generated_at = time.monotonic()
            lines = {kind: _read_lines(fhir / f"{kind}.ndjson") for kind in RESOURCE_TYPES}
            keep = select_patients(lines, args.only_patients_with, args.max_bytes,
                                   args.max_patient_bytes)
            args.out.mkdir(parents=True, exist_ok=True)
            counts = {}
            for kind in RESOURCE_TYPES:
                kept = lines[kind] if keep is None else [
                    line for line in lines[kind] if _subject_id(line) in keep]
                # Synthea writes from several threads: sort for a stable file per seed.
                kept.sort(key=lambda line: (_subject_id(line), line))
                counts[kind] = write_ndjson(args.out / f"{kind}.ndjson", kept)
        finally:
            if args.keep_work:
                print(f"Synthea's working folder: {work}", file=sys.stderr)
            else:
                shutil.rmtree(work, ignore_errors=True)
    except SyntheaError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finished = time.monotonic()
    summary = ", ".join(f"{counts[kind]} {kind}" for kind in RESOURCE_TYPES)
    print(f"{summary} in {args.out} (Synthea {generated_at - started:.0f} s, "
          f"total {finished - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
