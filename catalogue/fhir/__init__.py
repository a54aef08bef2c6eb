"""FHIR releases: which ones the catalogue reads, how a release is recognised, and validation.

This module pins the FHIR models: ``fhir.resources`` 8.x, whose top-level package is R5
(5.0.0) and whose ``R4B`` package is R4B (4.3.0). R4 (4.0.1) resources are validated with the
R4B models: for the resources read here (Patient, ImagingStudy, Condition, Bundle) R4 and R4B
are the same. DSTU2 and STU3 are refused with a message that says so.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

import fhir.resources

#: the package version the models come from (see setup.cfg)
MODELS_VERSION = fhir.resources.__version__
READ_RELEASES = ("R4", "R4B", "R5")
RESOURCE_TYPES = ("Patient", "ImagingStudy", "Condition")

_VERSIONS = {  # fhirVersion (CapabilityStatement, Bulk manifest) prefixes → release
    "1.0": "DSTU2", "1.4": "STU3", "1.6": "STU3", "1.8": "STU3", "3.0": "STU3",
    "3.3": "R4", "3.5": "R4", "4.0": "R4", "4.1": "R4B", "4.3": "R4B", "4.2": "R5",
    "4.4": "R5", "4.5": "R5", "4.6": "R5", "5.0": "R5",
}


class UnsupportedRelease(ValueError):
    """A FHIR release the catalogue does not read (DSTU2, STU3, unknown)."""


def release_of(version: str) -> str:
    """The release of a ``fhirVersion`` string (``4.0.1`` → ``R4``); raises
    :class:`UnsupportedRelease` for DSTU2/STU3 and unknown versions."""
    text = (version or "").strip()
    found = _VERSIONS.get(".".join(text.split(".")[:2]))
    if found in ("DSTU2", "STU3"):
        raise UnsupportedRelease(
            f"FHIR {found} ({text}) is not supported: the catalogue reads FHIR R4, R4B and R5")
    if found is None:
        raise UnsupportedRelease(f"unknown FHIR version {text!r}: the catalogue reads FHIR R4 "
                                 "(4.0.x), R4B (4.3.x) and R5 (5.0.x)")
    return found


def _coding_like(value: Any) -> bool:
    return isinstance(value, dict) and ("code" in value or "system" in value) and \
        "coding" not in value


def sniff_release(resource: dict[str, Any]) -> str | None:
    """The release a resource's shape gives away, if any (``None``: R4 and R5 read alike).

    Raises :class:`UnsupportedRelease` for DSTU2/STU3 shapes, naming the telling element.
    """
    kind = resource.get("resourceType")
    for profile in (resource.get("meta") or {}).get("profile") or []:
        text = str(profile)
        if "/DSTU2/" in text or "/STU3/" in text:
            raise UnsupportedRelease(f"{kind} declares the profile {text}, which is not R4/R5")
    if kind == "ImagingStudy":
        if "patient" in resource or "uid" in resource:
            raise UnsupportedRelease(
                "ImagingStudy has 'patient'/'uid' (DSTU2/STU3 elements); the catalogue reads "
                "FHIR R4, R4B and R5")
        if "modalityList" in resource:
            raise UnsupportedRelease(
                "ImagingStudy has 'modalityList' (an STU3 element); the catalogue reads "
                "FHIR R4, R4B and R5")
        modalities = resource.get("modality") or []
        if modalities and isinstance(modalities, list):
            first = modalities[0]
            if isinstance(first, dict) and "coding" in first:
                return "R5"
            if _coding_like(first):
                return "R4"
        for series in resource.get("series") or []:
            if not isinstance(series, dict):
                continue
            if isinstance(series.get("modality"), dict):
                return "R5" if "coding" in series["modality"] else "R4"
    if kind == "Condition":
        if "patient" in resource:
            raise UnsupportedRelease("Condition has 'patient' (a DSTU2 element); the catalogue "
                                     "reads FHIR R4, R4B and R5")
        if isinstance(resource.get("clinicalStatus"), str):
            raise UnsupportedRelease("Condition.clinicalStatus is a code (STU3); the catalogue "
                                     "reads FHIR R4, R4B and R5")
        if "participant" in resource:
            return "R5"
        if "asserter" in resource or "recorder" in resource:
            return "R4"
    return None


@cache
def model(release: str, resource_type: str) -> Any:
    """The pydantic model of ``resource_type`` in ``release``."""
    if resource_type not in (*RESOURCE_TYPES, "Bundle"):
        raise ValueError(f"{resource_type} is not read by the catalogue")
    package = "fhir.resources" if release == "R5" else "fhir.resources.R4B"
    module = importlib.import_module(f"{package}.{resource_type.lower()}")
    return getattr(module, resource_type)


def validate(release: str, resource: dict[str, Any]) -> list[str]:
    """Validation problems of ``resource`` against ``release`` (empty: valid). Messages name
    the element path and the rule, never the offending value (it may be identifying)."""
    from pydantic import ValidationError

    try:
        model(release, resource["resourceType"]).model_validate(resource)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_input=False, include_url=False)[:5]:
            path = ".".join(str(p) for p in error.get("loc", ()))
            problems.append(f"{path}: {error.get('msg', 'invalid')}" if path
                            else str(error.get("msg", "invalid")))
        return problems or ["invalid resource"]
    except (TypeError, ValueError) as exc:
        return [f"invalid resource: {type(exc).__name__}"]
    return []

