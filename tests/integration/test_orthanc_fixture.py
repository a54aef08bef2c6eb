"""The DICOMweb test PACS: a real Orthanc + DICOMweb plugin fed with pydicom-generated studies.

Checks what the DICOMweb harvester relies on: every generated study is found through QIDO-RS with
the generated modalities and series/instance counts, series-level attributes (body part,
manufacturer) are available with ``includefield``, ``offset``/``limit`` paging is complete and
stable, deletions are visible, and the fixture leaves no process behind.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests

from catalogue.testing.dicom import GeneratedStudy, StudyTruth, synthetic_population
from catalogue.testing.orthanc import Orthanc, OrthancError, run_orthanc

QIDO = {"Accept": "application/dicom+json"}
STUDY_DEFAULT_TAGS = {
    "00080005",  # SpecificCharacterSet (always "ISO_IR 100"; the JSON itself is UTF-8)
    "00080020",  # StudyDate
    "00080030",  # StudyTime
    "00080050",  # AccessionNumber
    "00080061",  # ModalitiesInStudy
    "00080090",  # ReferringPhysicianName
    "00081190",  # RetrieveURL
    "00100010",  # PatientName
    "00100020",  # PatientID
    "00100030",  # PatientBirthDate
    "00100040",  # PatientSex
    "0020000D",  # StudyInstanceUID
    "00200010",  # StudyID
    "00201206",  # NumberOfStudyRelatedSeries
    "00201208",  # NumberOfStudyRelatedInstances
}
SERIES_DEFAULT_TAGS = (STUDY_DEFAULT_TAGS - {"00080061", "00201206", "00201208"}) | {
    "00080060",  # Modality
    "0008103E",  # SeriesDescription
    "0020000E",  # SeriesInstanceUID
    "00200011",  # SeriesNumber
    "00201209",  # NumberOfSeriesRelatedInstances
}
SERIES_FIELDS = ("BodyPartExamined", "Manufacturer", "ManufacturerModelName", "SeriesDate")


def values(item: dict[str, Any], tag: str) -> list[Any]:
    """The Value list of one DICOM JSON attribute ([] when absent or empty)."""
    return list(item.get(tag, {}).get("Value", []))


def first(item: dict[str, Any], tag: str) -> Any:
    found = values(item, tag)
    return found[0] if found else None


@pytest.fixture(scope="module")
def population() -> list[GeneratedStudy]:
    return synthetic_population(5, seed=11, n_studies=8, max_instances=3, quirks=True)


@pytest.fixture(scope="module")
def pacs(
    tmp_path_factory: pytest.TempPathFactory, population: list[GeneratedStudy]
) -> Iterator[Orthanc]:
    with run_orthanc(tmp_path_factory.mktemp("orthanc")) as orthanc:
        for generated in population:
            orthanc.upload_all(generated.instances())
        yield orthanc


def qido(orthanc: Orthanc, path: str, **params: Any) -> list[dict[str, Any]]:
    response = requests.get(
        f"{orthanc.dicomweb_url}{path}", params=params, headers=QIDO, timeout=30
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/dicom+json")
    body = response.json()
    assert isinstance(body, list)
    return body


def all_studies(orthanc: Orthanc, page: int, **params: Any) -> list[dict[str, Any]]:
    """Page through /studies the way the harvester will: offset += limit until a short page."""
    found: list[dict[str, Any]] = []
    offset = 0
    while True:
        batch = qido(orthanc, "/studies", limit=page, offset=offset, **params)
        found += batch
        if len(batch) < page:
            return found
        offset += page


def test_population_is_realistic_and_deterministic(population: list[GeneratedStudy]) -> None:
    assert len(population) == 8
    assert len({g.truth.patient_id for g in population}) == 5
    again = synthetic_population(5, seed=11, n_studies=8, max_instances=3, quirks=True)
    assert [g.truth for g in again] == [g.truth for g in population]
    assert again[0].instances() == population[0].instances()
    assert synthetic_population(5, seed=12, n_studies=8)[0].truth != population[0].truth

    for generated in population:
        truth = generated.truth
        files = [pydicom.dcmread(io.BytesIO(data)) for data in generated.instances()]
        assert len(files) == truth.instance_count
        assert {ds.SeriesInstanceUID for ds in files} == {s.series_uid for s in truth.series}
        assert {ds.Modality for ds in files} == truth.modalities
        assert {ds.get("BodyPartExamined") for ds in files} - {None} == truth.body_parts
        for ds in files:
            assert ds.StudyInstanceUID == truth.study_uid
            assert ds.PatientID == truth.patient_id
            assert ds.IssuerOfPatientID == truth.issuer_of_patient_id
            assert str(ds.PatientName) == truth.patient_name
            assert ds.PatientBirthDate == truth.birth_date.strftime("%Y%m%d")
            assert ds.PatientSex == truth.sex
            assert ds.get("PatientAge") == truth.patient_age
            assert ds.AccessionNumber == truth.accession_number
            assert ds.StudyDate == truth.study_date.strftime("%Y%m%d")
            assert ds.InstitutionName == truth.institution_name
            assert ds.InstitutionAddress == truth.institution_address
            assert ds.Manufacturer in truth.manufacturers
            assert ds.ManufacturerModelName
            assert (ds.Rows, ds.Columns) == (8, 8)
            assert len(ds.PixelData) == 8 * 8 * 2
        assert truth.identifying_values() >= {
            truth.patient_id,
            truth.study_uid,
            truth.accession_number,
        }


def test_every_study_is_found_with_generated_counts(
    pacs: Orthanc, population: list[GeneratedStudy]
) -> None:
    assert pacs.statistics()["CountStudies"] == len(population)
    truth: dict[str, StudyTruth] = {g.truth.study_uid: g.truth for g in population}
    studies = all_studies(
        pacs, page=3, includefield=["00081030", "IssuerOfPatientID", "PatientAge"]
    )
    by_uid = {first(s, "0020000D"): s for s in studies}
    assert set(by_uid) == set(truth)
    for uid, study in by_uid.items():
        expected = truth[uid]
        assert STUDY_DEFAULT_TAGS <= set(study)
        assert set(values(study, "00080061")) == expected.modalities  # ModalitiesInStudy
        assert study["00201206"] == {"vr": "IS", "Value": [expected.series_count]}
        assert study["00201208"] == {"vr": "IS", "Value": [expected.instance_count]}
        assert first(study, "00100020") == expected.patient_id
        assert first(study, "00100021") == expected.issuer_of_patient_id
        assert first(study, "00100010") == {"Alphabetic": expected.patient_name}
        assert first(study, "00100030") == expected.birth_date.strftime("%Y%m%d")
        assert first(study, "00100040") == expected.sex
        assert first(study, "00101010") == expected.patient_age
        assert first(study, "00080050") == expected.accession_number
        assert first(study, "00080020") == expected.study_date.strftime("%Y%m%d")
        assert first(study, "00081030") == expected.study_description
        assert first(study, "00081190") == f"{pacs.dicomweb_url}/studies/{uid}"
        referring = study["00080090"]
        if expected.referring_physician:
            assert referring == {
                "vr": "PN",
                "Value": [{"Alphabetic": expected.referring_physician}],
            }
        else:  # an empty attribute has a vr and no Value
            assert referring == {"vr": "PN"}


def test_series_level_attributes(pacs: Orthanc, population: list[GeneratedStudy]) -> None:
    for generated in population:
        truth = generated.truth
        series = qido(pacs, f"/studies/{truth.study_uid}/series", includefield=list(SERIES_FIELDS))
        by_uid = {first(s, "0020000E"): s for s in series}
        assert set(by_uid) == {s.series_uid for s in truth.series}
        for expected in truth.series:
            found = by_uid[expected.series_uid]
            assert SERIES_DEFAULT_TAGS <= set(found)
            assert first(found, "00080060") == expected.modality
            assert found["00201209"] == {"vr": "IS", "Value": [expected.instance_count]}
            assert first(found, "00200011") == expected.number
            assert first(found, "0008103E") == expected.description
            assert first(found, "00080070") == expected.manufacturer
            assert first(found, "00081090") == expected.model
            assert first(found, "00080021") == truth.study_date.strftime("%Y%m%d")
            if expected.body_part is None:
                assert "00180015" not in found  # absent in the files: absent in QIDO
            else:
                assert found["00180015"] == {"vr": "CS", "Value": [expected.body_part]}
        body_parts = {first(s, "00180015") for s in series} - {None}
        assert body_parts == truth.body_parts


def test_default_attributes_and_includefield(
    pacs: Orthanc, population: list[GeneratedStudy]
) -> None:
    """Characterises Orthanc 1.10 + DICOMweb 1.7: ``includefield=all`` adds nothing; named
    fields (keyword or tag) are added when repeated or joined by a literal comma, but an
    encoded comma is silently ignored; a series-level attribute asked at study level comes from
    one arbitrary instance, so body parts need series queries."""
    default = qido(pacs, "/studies", limit=1)[0]
    assert set(default) == STUDY_DEFAULT_TAGS
    assert set(qido(pacs, "/studies", limit=1, includefield="all")[0]) == STUDY_DEFAULT_TAGS
    named = qido(pacs, "/studies", limit=1, includefield=["00081030", "InstitutionName"])[0]
    assert set(named) == STUDY_DEFAULT_TAGS | {"00081030", "00080080"}
    url = f"{pacs.dicomweb_url}/studies?limit=1&includefield=00081030,InstitutionName"
    literal_comma = requests.get(url, headers=QIDO, timeout=30).json()[0]
    assert set(literal_comma) == STUDY_DEFAULT_TAGS | {"00081030", "00080080"}
    # requests encodes the comma as %2C, and Orthanc then ignores the whole value
    encoded = qido(pacs, "/studies", limit=1, includefield="00081030,InstitutionName")[0]
    assert set(encoded) == STUDY_DEFAULT_TAGS
    series = qido(pacs, f"/studies/{population[0].truth.study_uid}/series", includefield="all")
    assert {frozenset(s) for s in series} == {frozenset(SERIES_DEFAULT_TAGS)}

    multi_part = [g.truth for g in population if len(g.truth.body_parts) > 1]
    for truth in multi_part:
        study = qido(
            pacs, "/studies", StudyInstanceUID=truth.study_uid, includefield="BodyPartExamined"
        )
        assert len(values(study[0], "00180015")) <= 1  # one value, not the study's set


def test_offset_limit_paging(pacs: Orthanc, population: list[GeneratedStudy]) -> None:
    everything = [first(s, "0020000D") for s in qido(pacs, "/studies")]
    assert len(everything) == len(population)
    assert [first(s, "0020000D") for s in qido(pacs, "/studies")] == everything  # stable order
    for page in (1, 3, 5, 8):
        paged = [first(s, "0020000D") for s in all_studies(pacs, page=page)]
        assert paged == everything
    assert [first(s, "0020000D") for s in qido(pacs, "/studies", limit=0)] == everything  # 0 = all
    assert [first(s, "0020000D") for s in qido(pacs, "/studies", offset=6)] == everything[6:]
    assert qido(pacs, "/studies", limit=3, offset=len(everything)) == []
    assert qido(pacs, "/studies", limit=3, offset=1000) == []
    response = requests.get(
        f"{pacs.dicomweb_url}/studies", params={"limit": 2}, headers=QIDO, timeout=30
    )
    assert "Link" not in response.headers and "X-Total-Count" not in response.headers
    series_total = sum(g.truth.series_count for g in population)
    series = [first(s, "0020000E") for s in qido(pacs, "/series", limit=0)]
    assert len(series) == len(set(series)) == series_total
    assert qido(pacs, "/studies/1.2.3.4/series") == []  # unknown study: empty, not 404


def test_upload_is_idempotent_and_deletion_is_visible(pacs: Orthanc) -> None:
    extra = synthetic_population(1, seed=99, max_instances=2)[0]
    files = extra.instances()
    assert pacs.upload(files[0])["Status"] == "Success"
    assert pacs.upload(files[0])["Status"] == "AlreadyStored"
    pacs.upload_all(files[1:])
    found = qido(pacs, "/studies", StudyInstanceUID=extra.truth.study_uid)
    assert found and found[0]["00201208"]["Value"] == [extra.truth.instance_count]
    assert pacs.delete_study(extra.truth.study_uid) is True
    assert qido(pacs, "/studies", StudyInstanceUID=extra.truth.study_uid) == []
    assert pacs.delete_study(extra.truth.study_uid) is False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_authentication_and_clean_stop(tmp_path: Path) -> None:
    with run_orthanc(tmp_path, credentials=("harvester", "s3cret")) as orthanc:
        assert orthanc.startup_seconds < 30
        assert orthanc.version
        url = f"{orthanc.dicomweb_url}/studies"
        assert requests.get(url, headers=QIDO, timeout=10).status_code == 401
        answer = requests.get(url, headers=QIDO, auth=("harvester", "s3cret"), timeout=10)
        assert answer.status_code == 200 and answer.json() == []
        process = orthanc.process
        assert process is not None
        port = orthanc.http_port
        assert (tmp_path / "orthanc.json").is_file()
    assert process.poll() is not None
    assert not orthanc.running
    assert not _port_open(port)


def test_missing_binary_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATALOGUE_ORTHANC_BINARY", str(tmp_path / "no-such-Orthanc"))
    with pytest.raises(OrthancError, match="not an executable"), run_orthanc(tmp_path):
        pass
    monkeypatch.delenv("CATALOGUE_ORTHANC_BINARY")
    monkeypatch.setenv("CATALOGUE_ORTHANC_DICOMWEB_PLUGIN", str(tmp_path / "missing.so"))
    with pytest.raises(OrthancError, match="apt-get install"), run_orthanc(tmp_path):
        pass


def test_suspended_pacs_times_out(pacs: Orthanc) -> None:
    """``suspend()`` simulates a hung PACS for the harvester's timeout handling."""
    pacs.suspend()
    try:
        with pytest.raises(requests.exceptions.Timeout):
            requests.get(f"{pacs.dicomweb_url}/studies", headers=QIDO, timeout=0.5)
    finally:
        pacs.resume()
    assert requests.get(f"{pacs.dicomweb_url}/studies", headers=QIDO, timeout=10).status_code == 200
