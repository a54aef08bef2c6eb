"""A deterministic FHIR population with identifying data, for tests of the FHIR harvester and
its benchmark: Patients (names, identifiers, addresses, telecom, exact birth dates),
ImagingStudies (Study Instance UIDs, accession numbers, series with body sites) and Conditions,
in R4 or R5 shapes. The ground truth comes with it.

By default the resources are lean: one instance listed per series, a cancer diagnosis per
patient. ``realistic=True`` gives them the size and shape real exports have, for the benchmark:
Patients with Synthea's extensions (race, ethnicity, birth place, mother's maiden name), four
identifiers and a geolocated address; ImagingStudies that list every instance of every series,
as a PACS's FHIR interface does (CT: 2-4 series of 20-60 instances; MR: 4-6 of 10-30; MG: the
four standard views), with procedure, encounter and location; and one or two coded comorbidities
per patient beside the cancer. ``fhir.resources`` then takes 1.2-1.4 ms per ImagingStudy on
this project's 2-core machine (the lean ones: 0.12 ms; Synthea's: 0.6 ms, mostly one-instance
X-rays).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

DCM = "http://dicom.nema.org/resources/ontology/DCM"
SCT = "http://snomed.info/sct"
ICD10 = "http://hl7.org/fhir/sid/icd-10"

#: (cancer SNOMED code, ICD-10, display, typical (modality, body-site SNOMED, body part id))
CANCERS = (
    ("254637007", "C34.9", "Non-small cell lung cancer", ("CT", "51185008", "CHEST")),
    ("254837009", "C50.9", "Malignant neoplasm of breast", ("MG", "76752008", "BREAST")),
    ("399068003", "C61", "Malignant tumor of prostate", ("MR", "41216001", "PROSTATE")),
)
MANUFACTURERS = ("Siemens Healthineers", "GE HealthCare", "Philips", "Canon Medical Systems")
#: realistic populations: (SNOMED, ICD-10, display) of common comorbidities
COMORBIDITIES = (
    ("13645005", "J44.9", "Chronic obstructive lung disease"),
    ("38341003", "I10", "Hypertensive disorder"),
    ("44054006", "E11.9", "Diabetes mellitus type 2"),
    ("53741008", "I25.10", "Coronary arteriosclerosis"),
    ("162864005", "E66.9", "Body mass index 30+ - obesity"),
)
#: realistic studies: modality → (series range, instances per series range, SOP class,
#: procedure SNOMED, procedure display)
SHAPES = {
    "CT": ((2, 4), (20, 60), "1.2.840.10008.5.1.4.1.1.2", "169069000", "CT of chest"),
    "MR": ((4, 6), (10, 30), "1.2.840.10008.5.1.4.1.1.4", "241615005", "MRI of prostate"),
    "MG": ((4, 4), (1, 1), "1.2.840.10008.5.1.4.1.1.1.2", "71651007", "Mammography"),
}
US_CORE = "http://hl7.org/fhir/us/core/StructureDefinition"


@dataclass
class Population:
    patients: list[dict[str, Any]] = field(default_factory=list)
    studies: list[dict[str, Any]] = field(default_factory=list)
    conditions: list[dict[str, Any]] = field(default_factory=list)

    def resources(self) -> list[dict[str, Any]]:
        return self.patients + self.studies + self.conditions

    def identifying_values(self) -> set[str]:
        """Every value of the input that must never reach the store."""
        values: set[str] = set()
        for p in self.patients:
            values.add(p["id"])
            values.add(p["birthDate"])
            values.update(i["value"] for i in p["identifier"])
            for name in p["name"]:
                values.add(name["family"])
                values.update(name["given"])
            for address in p["address"]:
                values.update(address["line"])
                values.add(address["postalCode"])
            values.update(t["value"] for t in p["telecom"])
            for extension in p.get("extension", ()):
                if "valueString" in extension:
                    values.add(extension["valueString"])  # mother's maiden name
        for s in self.studies:
            values.update(i["value"] for i in s["identifier"])
            values.update(se["uid"] for se in s["series"])
            values.update(i["uid"] for se in s["series"] for i in se.get("instance", ()))
            values.add(s["started"])
        return values


def population(n: int = 30, seed: int = 7, release: str = "R4",
               realistic: bool = False) -> Population:
    """``n`` patients; each has one or two imaging studies, and most a cancer diagnosis
    (``realistic``: see the module's docstring)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    out = Population()
    for i in range(n):
        pid = f"pat-{seed}-{i:04d}"
        cancer = CANCERS[i % len(CANCERS)]
        sex = "female" if cancer[0] == "254837009" else (
            "male" if cancer[0] == "399068003" else rng.choice(("female", "male")))
        born = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 45))
        out.patients.append({
            "resourceType": "Patient", "id": pid,
            "meta": {"lastUpdated": "2026-01-01T00:00:00Z"},
            "text": {"status": "generated", "div": f"<div>Patient {pid}</div>"},
            "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5",
                            "value": f"MRN{seed}{i:06d}"},
                           {"system": "http://hl7.org/fhir/sid/us-ssn",
                            "value": f"999-{seed:02d}-{i:04d}"}],
            "name": [{"family": f"Familyname{seed}x{i}", "given": [f"Givenname{seed}x{i}"]}],
            "telecom": [{"system": "phone", "value": f"555-01{seed:02d}{i:04d}"}],
            "gender": sex, "birthDate": born.isoformat(),
            "address": [{"line": [f"{i} Testing Street {seed}"], "city": "Springfield",
                         "postalCode": f"9{seed:02d}{i:03d}"}],
        })
        if realistic:
            _realistic_patient(out.patients[-1], rng, seed, i)
        for j in range(1 + (i % 2)):
            modality, site, _part = cancer[3]
            started = born + timedelta(days=365 * rng.randint(45, 75) + rng.randrange(0, 365))
            uid = f"2.25.{seed}{i:05d}{j}"
            modality_value: Any = ({"system": DCM, "code": modality} if release != "R5"
                                   else {"coding": [{"system": DCM, "code": modality}]})
            body_site: Any = ({"system": SCT, "code": site} if release != "R5"
                              else {"concept": {"coding": [{"system": SCT, "code": site}]}})
            series = [{"uid": f"{uid}.{k}", "number": k + 1, "modality": modality_value,
                       "bodySite": body_site, "numberOfInstances": 10 + k,
                       "instance": [{"uid": f"{uid}.{k}.1",
                                     "sopClass": {"system": "urn:ietf:rfc:3986",
                                                  "code": "urn:oid:1.2.840.10008.5.1.4.1.1.2"}}]}
                      for k in range(1 + j)]
            out.studies.append({
                "resourceType": "ImagingStudy", "id": f"img-{seed}-{i:04d}-{j}",
                "identifier": [{"system": "urn:dicom:uid", "value": f"urn:oid:{uid}"},
                               {"type": {"coding": [{"code": "ACSN"}]},
                                "value": f"ACC{seed}{i:05d}{j}"}],
                "status": "available", "subject": {"reference": f"Patient/{pid}"},
                "started": started.isoformat() + "T10:00:00Z",
                "modality": [modality_value],
                "numberOfSeries": len(series),
                "numberOfInstances": sum(s["numberOfInstances"] for s in series),
                "extension": [{"url": "http://example.org/fhir/StructureDefinition/manufacturer",
                               "valueString": MANUFACTURERS[i % len(MANUFACTURERS)]}],
                "series": series,
            })
            if realistic:
                _realistic_study(out.studies[-1], rng, release, f"enc-{seed}-{i:04d}-{j}")
        if i % 5 != 4:  # every fifth patient has imaging but no coded cancer yet
            out.conditions.append({
                "resourceType": "Condition", "id": f"cond-{seed}-{i:04d}",
                "clinicalStatus": {"coding": [{
                    "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                    "code": "active"}]},
                "code": {"coding": [{"system": SCT, "code": cancer[0], "display": cancer[2]},
                                    {"system": ICD10, "code": cancer[1]}],
                         "text": f"{cancer[2]} noted by Dr Familyname{seed}x{i}"},
                "subject": {"reference": f"Patient/{pid}"},
                "note": [{"text": f"free text about Givenname{seed}x{i}"}],
            })
            if realistic:
                out.conditions[-1].update(verificationStatus=_VERIFIED,
                                          category=_ENCOUNTER_DIAGNOSIS)
        if realistic:
            for k, (sct, icd, display) in enumerate(
                    rng.sample(COMORBIDITIES, 1 + (i % 2))):
                out.conditions.append(_realistic_condition(
                    f"cond-{seed}-{i:04d}-c{k}", pid, sct, icd, display,
                    born + timedelta(days=365 * rng.randint(40, 60)), f"enc-{seed}-{i:04d}-0"))
    return out


_VERIFIED = {"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
    "code": "confirmed"}]}
_ENCOUNTER_DIAGNOSIS = [{"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/condition-category",
    "code": "encounter-diagnosis", "display": "Encounter Diagnosis"}]}]


def _realistic_patient(patient: dict[str, Any], rng: random.Random, seed: int, i: int) -> None:
    """Synthea's shape: us-core extensions, four identifiers, a geolocated address."""
    patient["text"]["div"] = (
        '<div xmlns="http://www.w3.org/1999/xhtml">Generated by the catalogue\'s test '
        f"population. Version identifier: {seed}.{i}</div>")
    patient["extension"] = [
        {"url": f"{US_CORE}/us-core-race", "extension": [
            {"url": "ombCategory", "valueCoding": {
                "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2106-3",
                "display": "White"}},
            {"url": "text", "valueString": "White"}]},
        {"url": f"{US_CORE}/us-core-ethnicity", "extension": [
            {"url": "ombCategory", "valueCoding": {
                "system": "urn:oid:2.16.840.1.113883.6.238", "code": "2186-5",
                "display": "Not Hispanic or Latino"}},
            {"url": "text", "valueString": "Not Hispanic or Latino"}]},
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-mothersMaidenName",
         "valueString": f"Maidenname{seed}x{i}"},
        {"url": f"{US_CORE}/us-core-birthsex",
         "valueCode": "F" if patient["gender"] == "female" else "M"},
        {"url": "http://hl7.org/fhir/StructureDefinition/patient-birthPlace",
         "valueAddress": {"city": "Springfield", "state": "Massachusetts", "country": "US"}},
    ]
    types = "http://terminology.hl7.org/CodeSystem/v2-0203"
    patient["identifier"] = [
        {**patient["identifier"][0],
         "type": {"coding": [{"system": types, "code": "MR", "display": "Medical Record "
                              "Number"}], "text": "Medical Record Number"}},
        {**patient["identifier"][1],
         "type": {"coding": [{"system": types, "code": "SS", "display": "Social Security "
                              "Number"}], "text": "Social Security Number"}},
        {"type": {"coding": [{"system": types, "code": "DL", "display": "Driver's license "
                              "number"}], "text": "Driver's license number"},
         "system": "urn:oid:2.16.840.1.113883.4.3.25", "value": f"S99{seed:02d}{i:05d}"},
        {"type": {"coding": [{"system": types, "code": "PPN", "display": "Passport Number"}],
                  "text": "Passport Number"},
         "system": "http://standardhealthrecord.org/fhir/StructureDefinition/passportNumber",
         "value": f"X{seed:02d}{i:06d}X"},
    ]
    patient["name"][0].update(use="official", prefix=["Mx."])
    patient["telecom"][0]["use"] = "home"
    patient["address"][0].update(state="Massachusetts", country="US", extension=[{
        "url": "http://hl7.org/fhir/StructureDefinition/geolocation", "extension": [
            {"url": "latitude", "valueDecimal": round(42.0 + rng.random(), 6)},
            {"url": "longitude", "valueDecimal": round(-71.0 - rng.random(), 6)}]}])
    patient["maritalStatus"] = {"coding": [{
        "system": "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus", "code": "M",
        "display": "Married"}], "text": "Married"}
    patient["multipleBirthBoolean"] = False
    patient["communication"] = [{"language": {"coding": [{
        "system": "urn:ietf:bcp:47", "code": "en-US", "display": "English (United States)"}],
        "text": "English (United States)"}}]


def _realistic_study(study: dict[str, Any], rng: random.Random, release: str,
                     encounter: str) -> None:
    """Every instance of every series listed, as a PACS's FHIR interface gives them."""
    first = study["series"][0]
    modality = (first["modality"]["code"] if release != "R5"
                else first["modality"]["coding"][0]["code"])
    (low, high), (fewest, most), sop, procedure, display = SHAPES[modality]
    uid = study["identifier"][0]["value"].removeprefix("urn:oid:")
    series = []
    for k in range(rng.randint(low, high)):
        count = rng.randint(fewest, most)
        series.append({
            **first, "uid": f"{uid}.{k + 1}", "number": k + 1, "numberOfInstances": count,
            "description": f"{display} series {k + 1}", "started": study["started"],
            "instance": [{"uid": f"{uid}.{k + 1}.{m + 1}",
                          "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{sop}"},
                          "number": m + 1, "title": f"{display} image {m + 1}"}
                         for m in range(count)]})
    study.update(series=series, numberOfSeries=len(series),
                 numberOfInstances=sum(s["numberOfInstances"] for s in series),
                 encounter={"reference": f"Encounter/{encounter}"},
                 location={"display": "Radiology department"},
                 referrer={"display": "Referring physician"})
    if release != "R5":  # R5 names it ``procedure`` (CodeableReference)
        study["procedureCode"] = [{"coding": [{"system": SCT, "code": procedure,
                                               "display": display}], "text": display}]


def _realistic_condition(cid: str, pid: str, sct: str, icd: str, display: str, onset: date,
                         encounter: str) -> dict[str, Any]:
    return {
        "resourceType": "Condition", "id": cid,
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": "active"}]},
        "verificationStatus": _VERIFIED, "category": _ENCOUNTER_DIAGNOSIS,
        "code": {"coding": [{"system": SCT, "code": sct, "display": display},
                            {"system": ICD10, "code": icd}], "text": display},
        "subject": {"reference": f"Patient/{pid}"},
        "encounter": {"reference": f"Encounter/{encounter}"},
        "onsetDateTime": onset.isoformat() + "T09:00:00Z",
        "recordedDate": onset.isoformat() + "T09:30:00Z",
    }


def write_ndjson(pop: Population, folder: Any) -> None:
    """Bulk Data layout: one file per resource type."""
    import json
    from pathlib import Path

    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    for name, items in (("Patient", pop.patients), ("ImagingStudy", pop.studies),
                        ("Condition", pop.conditions)):
        with (target / f"{name}.ndjson").open("w") as fh:
            for item in items:
                fh.write(json.dumps(item) + "\n")
