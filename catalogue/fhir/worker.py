"""The per-resource work of a FHIR ingest, done in worker processes.

For each raw resource (an NDJSON line or a parsed dict): parse, recognise the release, compute
the pseudonymous keys and the keyed content hash, and, only when the hash differs from what the
store holds, validate with ``fhir.resources`` and extract the facts. The main process receives
small tuples and only assembles records and writes them.

Module state (the provider's pseudonymiser, the stored hashes) is set once per process by
:func:`init`; the main process calls it too when it processes a small chunk itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from catalogue.fhir import RESOURCE_TYPES, UnsupportedRelease, mapping, sniff_release, validate
from catalogue.privacy.pseudonymise import Pseudonymiser

KIND = {"Patient": "subject", "ImagingStudy": "study", "Condition": "condition"}


@dataclass
class Outcome:
    """What became of one resource."""

    status: str  # "changed" | "unchanged" | "invalid" | "skipped" | "warning"
    location: str
    kind: str = ""  # resourceType
    key: str = ""  # pseudonymous key of the record
    content_hash: str = ""
    subject_key: str | None = None  # the patient a study/condition refers to (or the patient)
    facts: Any = None  # mapping facts (changed records; patients always)
    record: str | None = None  # label for error messages (never a patient id)
    message: str = ""


_STATE: dict[str, Any] = {}


def init(key: bytes, namespace: str, known: dict[str, dict[str, str | None]],
         declared: str | None) -> None:
    """Set this process's pseudonymiser, the store's hashes and the source's release."""
    _STATE.update(pseudonyms=Pseudonymiser(key), namespace=namespace, known=known,
                  declared=declared)


def _canonical(resource: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in resource.items() if k not in ("meta", "text")},
                        option=orjson.OPT_SORT_KEYS)


def _label(kind: str, resource: dict[str, Any]) -> str:
    # a patient's logical id may be an identifier: errors name the line, not the id
    return kind if kind == "Patient" else f"{kind}/{resource.get('id')}"


def process_one(location: str, raw: bytes | dict[str, Any]) -> Outcome:
    if isinstance(raw, dict):
        resource: Any = raw
    else:
        try:
            resource = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return Outcome("invalid", location, message=f"the record is not valid JSON ({exc})")
    if not isinstance(resource, dict):
        return Outcome("invalid", location, message="not a FHIR resource (a JSON object)")
    kind = str(resource.get("resourceType") or "")
    if kind not in RESOURCE_TYPES:
        return Outcome("skipped", location, kind)
    label = _label(kind, resource)
    rid = resource.get("id")
    if not isinstance(rid, str) or not rid.strip():
        return Outcome("invalid", location, kind, record=kind, message=f"{kind} without an id")
    try:
        sniffed = sniff_release(resource)
    except UnsupportedRelease as exc:
        return Outcome("invalid", location, kind, record=label, message=str(exc))
    declared = _STATE["declared"]
    release = sniffed or declared or "R4"
    pseudonyms: Pseudonymiser = _STATE["pseudonyms"]
    namespace: str = _STATE["namespace"]
    digest = pseudonyms.content_hash(_canonical(resource))
    if kind == "Patient":
        key = pseudonyms.subject_key(namespace, f"Patient/{rid}")
        subject_key: str | None = key
    else:
        ref = mapping.reference(resource.get("subject"))
        subject_key = pseudonyms.subject_key(namespace, ref) if ref and ref.startswith(
            "Patient/") else None
        if kind == "ImagingStudy":
            uid = mapping.study_uid(resource)
            key = pseudonyms.study_key(uid if uid else f"fhir:ImagingStudy/{rid}")
        else:
            key = pseudonyms.hash_identifier("condition", f"Condition/{rid}")
    if _STATE["known"][KIND[kind]].get(key, "") == digest:
        # unchanged: not validated; a patient's facts are still needed for ages
        facts = mapping.patient(resource) if kind == "Patient" else None
        return Outcome("unchanged", location, kind, key, digest, subject_key, facts, label)
    problems = validate(release, resource)
    if problems:
        return Outcome("invalid", location, kind, key, record=label,
                       message=f"invalid {kind}: " + "; ".join(problems))
    outcome = Outcome("changed", location, kind, key, digest, subject_key,
                      mapping.facts(resource), label)
    if declared and sniffed and sniffed != declared and {sniffed, declared} != {"R4", "R4B"}:
        outcome.message = (f"the source declares FHIR {declared} but this {kind} has the shape "
                           f"of {sniffed}; validated as {sniffed}")
    return outcome


def process(chunk: list[tuple[str, bytes | dict[str, Any]]]) -> list[Outcome]:
    """Worker-process entry point."""
    return [process_one(location, raw) for location, raw in chunk]
