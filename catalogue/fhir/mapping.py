"""FHIR R4/R4B/R5 resources → the few facts the catalogue keeps.

Works on the parsed JSON (dicts), so it is cheap and runs in worker processes. Only whitelisted
facts come out: no names, addresses, telecom, identifiers, narrative or free text. Exact dates
come out only to be turned into ages and coarsened by the caller; they are never stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any

from catalogue.privacy.pseudonymise import parse_date

#: FHIR code systems → the catalogue's system names (conditions and body sites)
CODE_SYSTEMS = {
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10",
    "urn:oid:2.16.840.1.113883.6.3": "icd10",
    "http://terminology.hl7.org/CodeSystem/icd-o-3": "icdo3",
    "urn:oid:2.16.840.1.113883.6.43.1": "icdo3",
    "http://dicom.nema.org/resources/ontology/DCM": "dicom",
    "http://loinc.org": "loinc",
}
_SEXES = {"male": "male", "female": "female", "other": "other", "unknown": "unknown"}


@dataclass
class PatientFacts:
    ref: str  # "Patient/{id}"
    sex: str | None
    birth_date: date | None  # exact: only to compute ages; never stored


@dataclass
class StudyFacts:
    ref: str  # "ImagingStudy/{id}"
    subject_ref: str | None
    uid: str | None  # Study Instance UID, when the resource carries it
    modalities: list[str] = field(default_factory=list)  # DICOM codes as written
    body_sites: list[tuple[str, str]] = field(default_factory=list)  # (system, code)
    manufacturer: str | None = None
    series_count: int | None = None
    instance_count: int | None = None
    started: date | None = None  # exact: only to compute the age and the coarsened month


@dataclass
class ConditionFacts:
    ref: str  # "Condition/{id}"
    subject_ref: str | None
    codes: list[tuple[str, str]] = field(default_factory=list)


Facts = PatientFacts | StudyFacts | ConditionFacts


def reference(value: Any, default_type: str = "Patient") -> str | None:
    """``Type/id`` of a FHIR Reference (relative, absolute, versioned or ``urn:uuid:``)."""
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if not isinstance(ref, str) or not ref.strip():
        return None
    ref = ref.strip()
    if ref.startswith(("urn:uuid:", "urn:oid:")):
        return f"{default_type}/{ref.rsplit(':', 1)[1]}"
    parts = [p for p in ref.split("/_history/")[0].split("/") if p]
    if len(parts) >= 2:
        return f"{parts[-2]}/{parts[-1]}"
    return f"{default_type}/{parts[-1]}" if parts else None


def _codings(value: Any) -> list[dict[str, Any]]:
    """Codings of a Coding (R4), a CodeableConcept or a CodeableReference (R5)."""
    if isinstance(value, list):
        return [c for item in value for c in _codings(item)]
    if not isinstance(value, dict):
        return []
    if "concept" in value:
        return _codings(value["concept"])
    if "coding" in value:
        return [c for c in value.get("coding") or [] if isinstance(c, dict)]
    return [value] if "code" in value else []


def _system(uri: Any) -> str:
    text = str(uri or "").strip()
    return CODE_SYSTEMS.get(text.rstrip("/"), text or "unknown")


def modality_ids(codes: list[str]) -> list[str]:
    """Modality codes → modalities-vocabulary ids (unknown codes kept, upper-cased)."""
    return list(dict.fromkeys(modality_id(c) for c in codes))


def body_part_ids(sites: list[tuple[str, str]]) -> list[str]:
    """(system, code) body sites → body-parts vocabulary ids (else ``system:code``)."""
    return list(dict.fromkeys(body_part_id(system, code) for system, code in sites))


@cache
def modality_id(code: str) -> str:
    from catalogue.ontology import get_vocabulary  # not needed in validation workers

    concept = get_vocabulary("modalities").resolve(code) or \
        get_vocabulary("modalities").resolve(f"dicom:{code}")
    return concept.id if concept else code.upper()


@cache
def body_part_id(system: str, code: str) -> str:
    from catalogue.ontology import get_vocabulary

    vocabulary = get_vocabulary("body_parts")
    concept = vocabulary.resolve(f"{system}:{code}") or (
        vocabulary.resolve(code) if system == "dicom" else None)
    return concept.id if concept else f"{system}:{code}"


def patient(resource: dict[str, Any]) -> PatientFacts:
    gender = resource.get("gender")
    return PatientFacts(
        ref=f"Patient/{resource.get('id')}",
        sex=_SEXES.get(gender) if isinstance(gender, str) else None,
        birth_date=parse_date(resource.get("birthDate")) if isinstance(
            resource.get("birthDate"), str) else None,
    )


def study_uid(resource: dict[str, Any]) -> str | None:
    for identifier in resource.get("identifier") or []:
        if not isinstance(identifier, dict):
            continue
        value = identifier.get("value")
        if not isinstance(value, str):
            continue
        system = identifier.get("system")
        # the Study Instance UID: "urn:dicom:uid" (R4/R5), or an OID URI (Synthea)
        if system == "urn:dicom:uid" or (system == "urn:ietf:rfc:3986"
                                         and value.startswith("urn:oid:")):
            return value.removeprefix("urn:oid:").strip() or None
    return None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 \
        else None


def _manufacturer(resource: dict[str, Any]) -> str | None:
    for holder in [resource, *(resource.get("series") or [])]:
        if not isinstance(holder, dict):
            continue
        for extension in holder.get("extension") or []:
            if isinstance(extension, dict) and str(extension.get("url", "")).lower().endswith(
                    "manufacturer") and isinstance(extension.get("valueString"), str):
                return extension["valueString"].strip()[:200] or None
    return None


def imaging_study(resource: dict[str, Any]) -> StudyFacts:
    series = [s for s in resource.get("series") or [] if isinstance(s, dict)]
    modalities: dict[str, None] = {}
    for coding in _codings(resource.get("modality")) + [
            c for s in series for c in _codings(s.get("modality"))]:
        code = coding.get("code")
        if isinstance(code, str) and code.strip():
            modalities[code.strip()] = None
    body_sites: dict[tuple[str, str], None] = {}
    for s in series:
        for coding in _codings(s.get("bodySite")):
            code = coding.get("code")
            if isinstance(code, str) and code.strip():
                body_sites[(_system(coding.get("system")), code.strip())] = None
    instances = _count(resource.get("numberOfInstances"))
    if instances is None and series:
        per_series = [_count(s.get("numberOfInstances")) or len(s.get("instance") or [])
                      for s in series]
        instances = sum(per_series)
    series_count = _count(resource.get("numberOfSeries"))
    started = resource.get("started")
    return StudyFacts(
        ref=f"ImagingStudy/{resource.get('id')}",
        subject_ref=reference(resource.get("subject")),
        uid=study_uid(resource),
        modalities=list(modalities),
        body_sites=list(body_sites),
        manufacturer=_manufacturer(resource),
        series_count=series_count if series_count is not None else (len(series) or None),
        instance_count=instances,
        started=parse_date(started) if isinstance(started, str) else None,
    )


def condition(resource: dict[str, Any]) -> ConditionFacts:
    codes: dict[tuple[str, str], None] = {}
    for coding in _codings(resource.get("code")):
        code = coding.get("code")
        if isinstance(code, str) and code.strip():
            codes[(_system(coding.get("system")), code.strip())] = None
    return ConditionFacts(
        ref=f"Condition/{resource.get('id')}",
        subject_ref=reference(resource.get("subject")),
        codes=list(codes),
    )


def facts(resource: dict[str, Any]) -> Facts:
    kind = resource.get("resourceType")
    if kind == "Patient":
        return patient(resource)
    if kind == "ImagingStudy":
        return imaging_study(resource)
    if kind == "Condition":
        return condition(resource)
    raise ValueError(f"{kind} is not read by the catalogue")
