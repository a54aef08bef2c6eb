"""DICOMweb ingest end to end: studies uploaded to a real Orthanc (REST API) are harvested through
QIDO-RS into PostgreSQL, pseudonymised; the stored records equal the ground truth of the generated
files; re-runs write nothing and query no series; deletions and additions at the PACS propagate;
PACS failures (HTTP errors, a hung PACS, one failing series query) are reported without losing
good records; dataset aggregates are recomputed under the privacy floor."""

from __future__ import annotations

import dataclasses
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from click.testing import CliRunner

from catalogue.cli import main
from catalogue.config import Config
from catalogue.harvest import dicomweb
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.testing.dicom import (
    INSTITUTIONS,
    GeneratedStudy,
    Patient,
    Series,
    Study,
    StudyTruth,
    dicom_uid,
    study_truth,
    synthetic_population,
)
from catalogue.testing.http_server import BackgroundHTTPServer
from catalogue.testing.orthanc import Orthanc, run_orthanc
from tests.integration.records import database_text, make_dataset

PAGE = 3  # studies per QIDO-RS page: smaller than every population here, so paging is exercised
SEXES = {"M": "male", "F": "female", "O": "other"}
# body-parts vocabulary ids of the DICOM defined terms the generator writes (upper-cased)
KNOWN_BODY_PARTS = {"ABDOMEN", "BRAIN", "BREAST", "CHEST", "HEAD", "LIVER", "NECK", "PELVIS",
                    "PROSTATE", "WHOLEBODY"}
FLOOR = 10


# -- ground truth, computed from the generated files' descriptions ---------------------------

def expected_body_part(term: str) -> str:
    upper = term.strip().upper()
    return upper if upper in KNOWN_BODY_PARTS else f"dicom:{upper}"


def expected_study(truth: StudyTruth) -> tuple[Any, ...]:
    born, on = truth.birth_date, truth.study_date
    age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
    return (tuple(sorted(truth.modalities)),
            tuple(sorted({expected_body_part(b) for b in truth.body_parts})),
            truth.manufacturer, truth.series_count, truth.instance_count,
            date(on.year, on.month, 1), age)


def expected(truths: list[StudyTruth]) -> list[tuple[Any, ...]]:
    """Per patient (Patient ID within its issuer): sex, birth year and the sorted facts of its
    studies; sorted."""
    patients: dict[tuple[str, str], list[StudyTruth]] = {}
    for truth in truths:
        patients.setdefault((truth.issuer_of_patient_id, truth.patient_id), []).append(truth)
    return sorted((SEXES[ts[0].sex], ts[0].birth_date.year,
                   tuple(sorted(expected_study(t) for t in ts))) for ts in patients.values())


def stored(rt: Runtime) -> dict[str, Any]:
    """Everything the record tables hold, comparable across runs."""
    with rt.database.transaction() as conn:
        subjects = conn.execute(
            "SELECT subject_key, sex, birth_year, content_hash, updated_at FROM subjects "
            "ORDER BY 1").fetchall()
        studies = conn.execute(
            "SELECT s.subject_key, st.study_key, st.modalities, st.body_parts, st.manufacturer, "
            "st.series_count, st.instance_count, st.study_month, st.age_at_study, "
            "st.content_hash, st.updated_at FROM imaging_studies st "
            "JOIN subjects s ON s.id = st.subject_id ORDER BY 2").fetchall()
        conditions = conn.execute("SELECT count(*) AS n FROM conditions").fetchone()
    assert conditions is not None and conditions["n"] == 0  # DICOM has no diagnoses
    return {"subjects": subjects, "studies": studies}


def stored_facts(rt: Runtime) -> list[tuple[Any, ...]]:
    """The stored records in the shape of :func:`expected` (pseudonym keys left out)."""
    now = stored(rt)
    per_subject: dict[str, list[tuple[Any, ...]]] = {s["subject_key"]: [] for s in now["subjects"]}
    for st in now["studies"]:
        per_subject[st["subject_key"]].append((
            tuple(sorted(st["modalities"])), tuple(sorted(st["body_parts"])), st["manufacturer"],
            st["series_count"], st["instance_count"], st["study_month"], st["age_at_study"]))
    return sorted((s["sex"], s["birth_year"], tuple(sorted(per_subject[s["subject_key"]])))
                  for s in now["subjects"])




def identifying(truths: list[StudyTruth]) -> set[str]:
    found: set[str] = set()
    for truth in truths:
        found |= truth.identifying_values() | {truth.institution_name}
    return found


def write_marks(rt: Runtime) -> dict[str, Any]:
    """What any write would move: row stamps, the outbox, the dataset row."""
    with rt.database.transaction() as conn:
        row = conn.execute(
            "SELECT (SELECT max(updated_at) FROM subjects) AS subjects, "
            "(SELECT max(updated_at) FROM imaging_studies) AS studies, "
            "(SELECT count(*) FROM outbox) AS outbox, "
            "(SELECT max(id) FROM outbox) AS last_outbox, "
            "(SELECT max(updated_at) FROM datasets) AS datasets").fetchone()
    assert row is not None
    return dict(row)


# -- fixtures ---------------------------------------------------------------------------------

def crafted_study() -> GeneratedStudy:
    """A hand-made head-and-neck CT: a patient of sex O, a body part the vocabulary knows and
    one it does not, written in lower case as some archives do."""
    patient = Patient("NT40404040", "Ortega Vidal^Alexis", date(1958, 11, 30), "O",
                      issuer="INT-MI")
    uid = dicom_uid("crafted-study")
    study = Study(uid, "NT2100000042", date(2021, 3, 14), "101500", "CT NECK WITH CONTRAST",
                  INSTITUTIONS[3], referring_physician="Ferri^Lucia^^Dr.")
    series = [
        Series(dicom_uid(uid, "series", 1), 1, "CT", "Neck 3.0 Br40", "NECK", "TOSHIBA",
               "Aquilion ONE", 2),
        Series(dicom_uid(uid, "series", 2), 2, "CT", "Parotid 1.0", "Parotid", "TOSHIBA",
               "Aquilion ONE", 1),
    ]
    return GeneratedStudy(patient, study, tuple(series), study_truth(patient, study, series))


@pytest.fixture(scope="module")
def population() -> list[GeneratedStudy]:
    """12 generated cancer patients (with archive quirks) and one hand-made study."""
    return [*synthetic_population(12, seed=21, max_instances=2, quirks=True), crafted_study()]


@pytest.fixture(scope="module")
def pacs(tmp_path_factory: pytest.TempPathFactory,
         population: list[GeneratedStudy]) -> Iterator[Orthanc]:
    """Read-only for the tests that use it (the mutating ones start their own)."""
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as orthanc:
        for generated in population:
            orthanc.upload_all(generated.instances())
        yield orthanc


@pytest.fixture
def small_pacs(tmp_path: Path) -> Iterator[Orthanc]:
    with run_orthanc(tmp_path / "orthanc") as orthanc:
        yield orthanc


@pytest.fixture
def target(runtime: Runtime) -> str:
    """An organisation with one dataset; returns the dataset id."""
    runtime.identities.create_organisation(SYSTEM, Organisation("org-a", "A", "ES"))
    return make_dataset(runtime, "lung-ct", "Lung CT")


@pytest.fixture
def requests_made(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """URLs the DICOMweb harvester fetches (paths and queries)."""
    made: list[str] = []
    real = dicomweb.fetch

    def counting(url: str, *args: Any, **kwargs: Any) -> Any:
        made.append(url)
        return real(url, *args, **kwargs)

    monkeypatch.setattr(dicomweb, "fetch", counting)
    return made


def harvest(rt: Runtime, url: str, **config: Any) -> Any:
    return rt.harvest.run_url(SYSTEM, "dicomweb", url, "org-a", dataset="lung-ct",
                              allow_private=True, config={"page_size": PAGE, **config})


def series_queries(made: list[str]) -> list[str]:
    return [u for u in made if urlsplit(u).path.endswith("/series")]


def study_pages(made: list[str]) -> list[int]:
    return [int(parse_qs(urlsplit(u).query)["offset"][0]) for u in made
            if urlsplit(u).path.endswith("/studies")]


class StandIn(BackgroundHTTPServer):
    """A PACS over real HTTP that forwards every GET to Orthanc, except what it is told to
    break: study pages at given offsets (or of the UID-only confirmation walk) and series
    queries of given studies answer 500, series queries of other studies hang for
    ``hang_seconds``, and ``ignore_offset`` makes it answer every page from the start."""

    def __init__(self, upstream: Orthanc) -> None:
        super().__init__()
        self.upstream = upstream.url
        self.fail_pages: set[int] = set()
        self.fail_confirmation = False
        self.ignore_offset = False
        self.fail_series: set[str] = set()
        self.hang_series: set[str] = set()
        self.hang_seconds = 4.0

    def _make_server(self) -> ThreadingHTTPServer:
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, content_type, body = stand_in.answer(self.path, self.headers)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the harvester gave up waiting

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        return server

    @property
    def url(self) -> str:
        assert self._httpd is not None, "not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/dicom-web"

    def answer(self, target: str, headers: Any) -> tuple[int, str, bytes]:
        parts = urlsplit(target)
        segments = parts.path.strip("/").split("/")
        if segments == ["dicom-web", "studies"]:
            query = parse_qs(parts.query)
            if int(query.get("offset", ["0"])[0]) in self.fail_pages:
                return 500, "text/plain", b"internal error"
            if self.fail_confirmation and "00080061" not in query.get("includefield", []):
                return 500, "text/plain", b"internal error"
            if self.ignore_offset:
                query.pop("offset", None)
                target = f"{parts.path}?{urlencode(query, doseq=True)}"
        if len(segments) == 4 and segments[1] == "studies" and segments[3] == "series":
            if segments[2] in self.fail_series:
                return 500, "text/plain", b"internal error"
            if segments[2] in self.hang_series:
                self.stopping.wait(self.hang_seconds)
        request = urllib.request.Request(
            self.upstream + target, headers={"Accept": headers.get("Accept", "*/*")})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return (response.status, response.headers.get("Content-Type", ""),
                        response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers.get("Content-Type", "text/plain"), exc.read()


def cli_env(config: Config) -> dict[str, str]:
    return {"CATALOGUE_DATABASE_URL": config.database_url, "CATALOGUE_DATA_DIR": config.data_dir,
            "CATALOGUE_SECRET_KEY": config.secret_key, "CATALOGUE_ENV": "test"}


def with_extra(generated: GeneratedStudy, change: Callable[[list[Series]], None]
               ) -> GeneratedStudy:
    """The same study with its series changed by ``change`` (new truth, new files)."""
    series = list(generated.series)
    change(series)
    return dataclasses.replace(generated, series=tuple(series), truth=study_truth(
        generated.patient, generated.study, series, profile=generated.truth.profile))


def one_more_instance(series: list[Series]) -> None:
    series[0] = dataclasses.replace(series[0], instances=series[0].instances + 1)


def one_more_series(series: list[Series]) -> None:
    last = series[-1]
    series.append(dataclasses.replace(
        last, series_uid=dicom_uid(last.series_uid, "added"), number=last.number + 1,
        description="Added reconstruction", instances=1))


# -- the tests --------------------------------------------------------------------------------

def test_studies_land_as_ground_truth(runtime: Runtime, target: str, pacs: Orthanc,
                                      population: list[GeneratedStudy],
                                      requests_made: list[str]) -> None:
    truths = [g.truth for g in population]
    n_studies = len(truths)
    n_subjects = len({(t.issuer_of_patient_id, t.patient_id) for t in truths})
    assert n_studies > PAGE * 3 and n_subjects == 13
    # the population has what the mapping must cope with
    assert any(b != b.upper() for t in truths for b in t.body_parts)  # "Chest"
    assert any(s.body_part is None for t in truths for s in t.series)
    assert any(t.patient_age is None for t in truths)
    assert {m for t in truths for m in t.modalities} >= {"CT", "MR", "PT", "MG"}

    report = harvest(runtime, pacs.dicomweb_url)
    assert report.status == "completed", report.error
    assert report.complete and report.errors == []
    assert report.counts["seen"] == n_studies + n_subjects  # each patient once
    assert report.counts["created"] == n_studies + n_subjects
    assert report.counts["updated"] == report.counts["unchanged"] == 0
    assert report.counts["invalid"] == report.counts["deleted"] == 0
    # offset/limit paging until the short page, and one series query per study
    assert study_pages(requests_made) == list(range(0, n_studies + 1, PAGE))
    assert len(series_queries(requests_made)) == n_studies

    assert stored_facts(runtime) == expected(truths)
    now = stored(runtime)
    assert len(now["subjects"]) == n_subjects and len(now["studies"]) == n_studies
    keys = [s["subject_key"] for s in now["subjects"]] + [s["study_key"] for s in now["studies"]]
    assert len(set(keys)) == len(keys)
    assert all(len(k) == 40 and int(k, 16) >= 0 for k in keys)  # keyed pseudonyms
    body_parts = {b for st in now["studies"] for b in st["body_parts"]}
    assert {"CHEST", "NECK", "dicom:PAROTID"} <= body_parts
    assert all(b in KNOWN_BODY_PARTS or b.startswith("dicom:") for b in body_parts)
    assert {s["sex"] for s in now["subjects"]} >= {"male", "female", "other"}


def test_reharvest_writes_nothing_and_queries_no_series(
        runtime: Runtime, target: str, pacs: Orthanc, population: list[GeneratedStudy],
        requests_made: list[str]) -> None:
    first = harvest(runtime, pacs.dicomweb_url)
    assert first.status == "completed"
    before, marks = stored(runtime), write_marks(runtime)
    requests_made.clear()

    again = harvest(runtime, pacs.dicomweb_url)
    assert again.status == "completed" and again.errors == []
    assert again.counts["created"] == again.counts["updated"] == again.counts["deleted"] == 0
    assert again.counts["invalid"] == 0
    assert again.counts["unchanged"] == again.counts["seen"] == first.counts["seen"]
    assert series_queries(requests_made) == []  # unchanged studies cost no further request
    assert stored(runtime) == before  # same rows, same hashes, same updated_at
    assert write_marks(runtime) == marks  # no outbox row, no aggregate recomputation


def test_nothing_identifying_is_stored(runtime: Runtime, target: str, pacs: Orthanc,
                                       population: list[GeneratedStudy]) -> None:
    assert harvest(runtime, pacs.dicomweb_url).status == "completed"
    assert harvest(runtime, pacs.dicomweb_url).status == "completed"
    values = identifying([g.truth for g in population])
    # what the scan looks for: names, patient ids, exact birth dates, every kind of UID,
    # accession numbers, institutions and referring physicians
    assert any(v.startswith("2.25.") for v in values) and "Ferri^Lucia^^Dr." in values
    assert "Fondazione IRCCS Istituto Nazionale dei Tumori" in values
    text = database_text(runtime)
    assert "dicom:PAROTID" in text  # the scan does read the record tables
    leaked = sorted(v for v in values if v in text)
    assert leaked == []


def test_dataset_aggregates_are_recomputed(runtime: Runtime, target: str, pacs: Orthanc,
                                           population: list[GeneratedStudy]) -> None:
    truths = [g.truth for g in population]
    assert harvest(runtime, pacs.dicomweb_url).status == "completed"
    aggregates = runtime.datasets.get(SYSTEM, target).aggregates
    patients = {(t.issuer_of_patient_id, t.patient_id) for t in truths}
    assert aggregates["number_of_individuals"] == len(patients) >= FLOOR
    assert aggregates["records"]["subjects"] == {"value": len(patients)}
    assert aggregates["records"]["source"] == "dicomweb"
    assert aggregates["number_of_studies"] == len(truths)
    # a modality is named when at least FLOOR patients have a study with it
    per_modality: dict[str, set[tuple[str, str]]] = {}
    for t in truths:
        for m in t.modalities:
            per_modality.setdefault(m, set()).add((t.issuer_of_patient_id, t.patient_id))
    assert sorted(aggregates["modalities"]) == sorted(
        m for m, who in per_modality.items() if len(who) >= FLOOR)
    assert all(c["value"] >= FLOOR for c in aggregates["records"]["manufacturers"].values())


def test_deletions_and_additions_propagate(runtime: Runtime, target: str, small_pacs: Orthanc,
                                          requests_made: list[str]) -> None:
    generated = synthetic_population(5, seed=4, n_studies=8, max_instances=2)
    for g in generated:
        small_pacs.upload_all(g.instances())
    per_patient: dict[str, list[GeneratedStudy]] = {}
    for g in generated:
        per_patient.setdefault(g.truth.patient_id, []).append(g)
    several = next(ps for ps in per_patient.values() if len(ps) >= 2)
    alone = next(ps for ps in per_patient.values() if len(ps) == 1)
    assert harvest(runtime, small_pacs.dicomweb_url).status == "completed"
    assert stored_facts(runtime) == expected([g.truth for g in generated])
    # below the floor: nothing exact is published
    aggregates = runtime.datasets.get(SYSTEM, target).aggregates
    assert aggregates["number_of_individuals"] is None
    assert aggregates["records"]["subjects"] == {"suppressed": True, "display": "<10"}
    assert aggregates["number_of_studies"] is None

    # one study of a patient with several, and the only study of another, are deleted
    assert small_pacs.delete_study(several[0].truth.study_uid)
    assert small_pacs.delete_study(alone[0].truth.study_uid)
    remaining = [g for g in generated if g not in (several[0], alone[0])]
    report = harvest(runtime, small_pacs.dicomweb_url)
    assert report.status == "completed" and report.complete, report.errors
    assert report.counts["deleted"] == 3  # two studies and the subject left without any
    assert report.counts["created"] == report.counts["updated"] == 0
    assert stored_facts(runtime) == expected([g.truth for g in remaining])
    assert len(stored(runtime)["subjects"]) == 4

    # an instance added to one study, a series to another, and a new patient's study
    grown = with_extra(remaining[0], one_more_instance)
    extended = with_extra(remaining[1], one_more_series)
    newcomer = synthetic_population(1, seed=77, max_instances=1)[0]
    for g in (grown, extended, newcomer):
        small_pacs.upload_all(g.instances())  # existing files: "AlreadyStored"
    assert grown.truth.instance_count == remaining[0].truth.instance_count + 1
    assert extended.truth.series_count == remaining[1].truth.series_count + 1
    requests_made.clear()
    report = harvest(runtime, small_pacs.dicomweb_url)
    assert report.status == "completed" and report.errors == []
    assert report.counts["updated"] == 2
    assert report.counts["created"] == 2  # the newcomer and its study
    assert report.counts["deleted"] == 0
    assert len(series_queries(requests_made)) == 3  # only the changed and the new study
    now = [grown, extended, *remaining[2:], newcomer]
    assert stored_facts(runtime) == expected([g.truth for g in now])
    aggregates = runtime.datasets.get(SYSTEM, target).aggregates
    assert aggregates["records"]["subjects"] == {"suppressed": True, "display": "<10"}


def test_failing_series_queries_are_per_study_errors(
        runtime: Runtime, target: str, small_pacs: Orthanc) -> None:
    generated = synthetic_population(6, seed=8, n_studies=9, max_instances=2)
    for g in generated:
        small_pacs.upload_all(g.instances())
    with StandIn(small_pacs) as pacs:
        assert harvest(runtime, pacs.url).status == "completed"
        assert stored_facts(runtime) == expected([g.truth for g in generated])
        # two studies change at the PACS; the series query of one fails, the other hangs
        failing, hanging = generated[0], generated[4]
        changed = {g.truth.study_uid: with_extra(g, one_more_instance)
                   for g in (failing, hanging)}
        for g in changed.values():
            small_pacs.upload_all(g.instances())
        pacs.fail_series = {failing.truth.study_uid}
        pacs.hang_series = {hanging.truth.study_uid}
        # meanwhile a third study is deleted and a new one arrives: those go through
        gone = generated[7]
        alone = sum(g.truth.patient_id == gone.truth.patient_id for g in generated) == 1
        assert small_pacs.delete_study(gone.truth.study_uid)
        newcomer = synthetic_population(1, seed=78, max_instances=1)[0]
        small_pacs.upload_all(newcomer.instances())

        started = time.monotonic()
        report = harvest(runtime, pacs.url, timeout=1, total_timeout=5, retries=0)
        assert time.monotonic() - started < 20
        assert report.status == "completed" and report.complete
        assert report.counts["invalid"] == 2
        assert report.counts["created"] == 2  # the newcomer and its study
        assert report.counts["deleted"] == 1 + alone  # the study (and a subject left empty)
        errors = [e for e in report.errors if e["severity"] == "error"]
        assert len(errors) == 2
        messages = sorted(e["message"] for e in errors)
        assert messages[0].startswith("QIDO-RS series query failed: HTTP 500")
        assert messages[1] == ("QIDO-RS series query failed: the server did not answer in "
                               "time")
        assert all(e["record"].startswith("study ") for e in errors)
        assert all(e["location"] == f"{pacs.url}/studies/…/series" for e in errors)
        # the failed studies keep their previous version; everything else is current
        kept = [g for g in generated if g is not gone]
        assert stored_facts(runtime) == expected([g.truth for g in [*kept, newcomer]])
        # no message names a study, a patient or a series
        values = identifying([g.truth for g in [*generated, newcomer]])
        assert [v for v in values if v in json.dumps(report.errors, ensure_ascii=False)] == []
        assert [v for v in values if v in database_text(runtime)] == []

        # the PACS recovers: the two studies are updated on the next run
        pacs.fail_series, pacs.hang_series = set(), set()
        report = harvest(runtime, pacs.url)
        assert report.status == "completed" and report.errors == []
        assert report.counts["updated"] == 2 and report.counts["created"] == 0
        now = [changed.get(g.truth.study_uid, g) for g in kept]
        assert stored_facts(runtime) == expected([g.truth for g in [*now, newcomer]])


def test_pacs_errors_and_timeouts(runtime: Runtime, target: str, small_pacs: Orthanc,
                                  config: Config) -> None:
    generated = synthetic_population(4, seed=5, n_studies=7, max_instances=1)
    for g in generated:
        small_pacs.upload_all(g.instances())
    with StandIn(small_pacs) as pacs:
        # 500 to the first study query: the run fails with a clear message, nothing stored
        pacs.fail_pages = {0}
        report = harvest(runtime, pacs.url)
        assert report.status == "failed"
        assert report.error.startswith("QIDO-RS study query failed: cannot fetch ")
        assert "HTTP 500" in report.error
        assert stored(runtime)["studies"] == []
        result = CliRunner().invoke(main, [
            "harvest", "dicomweb", pacs.url, "--organisation", "org-a", "--dataset", "lung-ct",
            "--allow-private", "--json"], env=cli_env(config))
        assert result.exit_code == 1, result.output
        printed = json.loads(result.output.strip().splitlines()[-1])
        assert printed["status"] == "failed" and "HTTP 500" in printed["error"]

        # a later page fails: what was read lands, nothing is deleted, the run says so
        pacs.fail_pages = set()
        assert harvest(runtime, pacs.url).status == "completed"
        assert small_pacs.delete_study(generated[0].truth.study_uid)
        pacs.fail_pages = {PAGE}
        report = harvest(runtime, pacs.url)
        assert report.status == "completed" and not report.complete
        assert report.counts["deleted"] == 0
        assert any(e["message"].startswith("QIDO-RS study query failed") and
                   e["location"].startswith(f"{pacs.url}/studies?offset={PAGE}&")
                   for e in report.errors)
        assert any(e["severity"] == "warning" and "no deletions" in e["message"]
                   for e in report.errors)
        assert stored_facts(runtime) == expected([g.truth for g in generated])

        # the walk misses a study, and the walk that confirms the miss fails: nothing deleted
        pacs.fail_pages, pacs.fail_confirmation = set(), True
        report = harvest(runtime, pacs.url)
        assert report.status == "completed" and not report.complete
        assert report.counts["deleted"] == 0 and report.counts["unchanged"] > 0
        assert stored_facts(runtime) == expected([g.truth for g in generated])

        # a PACS that ignores offset would serve the first page forever: the walk stops
        pacs.fail_confirmation, pacs.ignore_offset = False, True
        report = harvest(runtime, pacs.url)
        assert report.status == "completed" and not report.complete
        assert any("ignores offset" in e["message"] for e in report.errors)
        assert report.counts["deleted"] == 0
        pacs.ignore_offset = False
        report = harvest(runtime, pacs.url)
        assert report.status == "completed" and report.complete
        assert report.counts["deleted"] >= 1  # now the deletion is confirmed and applied
        assert stored_facts(runtime) == expected([g.truth for g in generated[1:]])

    # a hung PACS: the run fails within the configured time
    small_pacs.suspend()
    try:
        started = time.monotonic()
        report = harvest(runtime, small_pacs.dicomweb_url, timeout=2, total_timeout=5,
                         retries=0)
        elapsed = time.monotonic() - started
    finally:
        small_pacs.resume()
    assert report.status == "failed"
    assert "did not answer in time" in report.error
    assert elapsed < 5
    # settings that are not numbers are refused clearly
    report = harvest(runtime, small_pacs.dicomweb_url, page_size="many")
    assert report.status == "failed" and report.error == (
        "source setting 'page_size' must be a number")


def test_patient_namespace_change_keeps_every_study(
        runtime: Runtime, target: str, pacs: Orthanc, population: list[GeneratedStudy]) -> None:
    """Subject keys depend on the source's patient namespace: when it changes, every study
    moves to its re-keyed subject (none is left behind with a subject that gets deleted)."""
    truths = [g.truth for g in population]
    assert harvest(runtime, pacs.dicomweb_url).status == "completed"
    before = {s["subject_key"] for s in stored(runtime)["subjects"]}
    report = harvest(runtime, pacs.dicomweb_url, patient_namespace="pacs-a")
    assert report.status == "completed" and report.errors == []
    now = stored(runtime)
    assert {s["subject_key"] for s in now["subjects"]}.isdisjoint(before)
    assert report.counts["deleted"] == len(before)
    assert stored_facts(runtime) == expected(truths)


def test_cli_contract(runtime: Runtime, target: str, pacs: Orthanc,
                      population: list[GeneratedStudy], config: Config) -> None:
    runner = CliRunner()
    args = ["harvest", "dicomweb", pacs.dicomweb_url, "--organisation", "org-a", "--dataset",
            "lung-ct", "--allow-private", "--json"]
    result = runner.invoke(main, args, env=cli_env(config))
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert report["status"] == "completed" and report["errors"] == []
    assert report["counts"]["created"] == report["counts"]["seen"] > len(population)
    assert stored_facts(runtime) == expected([g.truth for g in population])
    again = json.loads(runner.invoke(main, args, env=cli_env(config)).output.splitlines()[-1])
    assert again["counts"]["unchanged"] == again["counts"]["seen"]
    # a loopback PACS needs the operator's permission
    by_name = pacs.dicomweb_url.replace("127.0.0.1", "localhost")
    refused = runner.invoke(main, [*args[:2], by_name, *args[3:-2], "--json"],
                            env=cli_env(config))
    assert refused.exit_code == 1
    assert "loopback" in json.loads(refused.output.strip().splitlines()[-1])["error"]
