"""A small, deterministic FHIR population with identifying data, for tests of the FHIR
harvester: Patients (names, identifiers, addresses, telecom, exact birth dates), ImagingStudies
(Study Instance UIDs, accession numbers, series with body sites) and Conditions, in R4 or R5
shapes. The ground truth comes with it.
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
        for s in self.studies:
            values.update(i["value"] for i in s["identifier"])
            values.update(se["uid"] for se in s["series"])
            values.add(s["started"])
        return values


def population(n: int = 30, seed: int = 7, release: str = "R4") -> Population:
    """``n`` patients; most have one or two imaging studies and a cancer diagnosis."""
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
    return out


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
