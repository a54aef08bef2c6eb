"""Study-level records, already pseudonymised: what a FHIR, OMOP or DICOMweb harvester hands to
the store. Nothing here can hold a name, an identifier, an address or an exact date: keys are
keyed HMACs (:mod:`catalogue.privacy.pseudonymise`), dates are coarsened, birth dates are years.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

SEXES = ("female", "male", "other", "unknown")


@dataclass
class StudyRecord:
    """One imaging study (FHIR ImagingStudy semantics)."""

    key: str  # keyed pseudonym of the Study Instance UID (or the source's study identifier)
    modalities: list[str] = field(default_factory=list)  # DICOM codes (CT, MR...) or concept ids
    body_parts: list[str] = field(default_factory=list)  # body-part concept ids or source codes
    manufacturer: str | None = None
    series_count: int | None = None
    instance_count: int | None = None
    study_month: date | None = None  # coarsened study date
    age_at_study: int | None = None  # whole years, from the exact dates before coarsening
    content_hash: str | None = None  # keyed hash of the source record: unchanged → skipped


@dataclass
class ConditionRecord:
    """One diagnosis record of the source, with every coding it carries."""

    key: str  # keyed pseudonym of the source record (FHIR Condition id, OMOP row id...)
    # (system, code): ("snomed", "254637007"), ("icd10", "C34.1"), ("icdo3", "8140/3")...
    codes: list[tuple[str, str]] = field(default_factory=list)
    content_hash: str | None = None


@dataclass
class SubjectRecord:
    """One patient of one dataset, with the studies and conditions read in this batch.

    A harvester may send the same subject in several batches (its studies on one page, its
    conditions on another): records merge. ``content_hash`` ``None`` means the batch only
    refers to the subject (its demographics came, or come, in another batch).
    """

    key: str  # keyed pseudonym of the patient identifier
    sex: str | None = None  # one of SEXES
    birth_year: int | None = None
    content_hash: str | None = None
    studies: list[StudyRecord] = field(default_factory=list)
    conditions: list[ConditionRecord] = field(default_factory=list)
