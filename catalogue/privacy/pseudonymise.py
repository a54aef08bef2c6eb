"""Pseudonymisation at ingest: the one place every study-level harvester strips identity.

- Subject and study keys are keyed HMAC-SHA-256 values. The key is derived per provider from
  the server secret, so the same patient gets unrelated keys at two providers, and nobody without
  the secret can recompute a key from a known identifier.
- Dates are coarsened (default: to the month), birth dates reduced to the birth year; the age at
  a study is computed from the exact dates *before* they are dropped.
- DICOM UIDs and accession numbers are hashed the same way (never stored as given).

Nothing here logs its inputs.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

Precision = Literal["day", "month", "year"]
_VERSION = b"catalogue-pseudonym-v1"


@dataclass(frozen=True)
class Pseudonymiser:
    """Keyed pseudonyms for one provider (organisation)."""

    key: bytes

    @classmethod
    def for_provider(cls, secret: str, provider_id: str) -> Pseudonymiser:
        if not secret:
            raise ValueError("pseudonymisation needs the server secret")
        derived = hmac.new(secret.encode(), _VERSION + b"|" + provider_id.encode(),
                           hashlib.sha256).digest()
        return cls(derived)

    def _mac(self, kind: str, *parts: str) -> str:
        message = "\x1f".join((kind, *parts)).encode()
        return hmac.digest(self.key, message, "sha256").hex()[:40]

    def subject_key(self, system: str, identifier: str) -> str:
        """The pseudonym of a patient identifier (``system``: the identifier's namespace, e.g.
        the FHIR server base, an OMOP database or a PACS)."""
        return self._mac("subject", system.strip(), identifier.strip())

    def study_key(self, uid: str) -> str:
        """The pseudonym of a Study Instance UID (or another study identifier)."""
        return self._mac("study", uid.strip())

    def content_hash(self, data: bytes) -> str:
        """Keyed hash of a source record's content (to skip unchanged records): keyed so that
        a stored hash cannot be matched against a guessed record."""
        return hmac.digest(self.key, b"content\x1f" + data, "sha256").hex()[:32]

    def hash_identifier(self, kind: str, value: str) -> str:
        """Any other identifier (series UID, accession number...): keyed, never reversible."""
        return self._mac(kind, value.strip())


def parse_date(value: str | date | datetime | None) -> date | None:
    """A date from ISO text (``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD``, date-times) or a date."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    try:
        if len(text) == 4:
            return date(int(text), 1, 1)
        if len(text) == 7:
            return date(int(text[:4]), int(text[5:7]), 1)
        if len(text) == 8 and text.isdigit():  # DICOM DA: YYYYMMDD
            return date(int(text[:4]), int(text[4:6]), int(text[6:8]))
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def birth_year(value: str | date | datetime | None) -> int | None:
    found = parse_date(value)
    return found.year if found else None


def coarsen(value: str | date | datetime | None, precision: Precision = "month") -> date | None:
    """``value`` reduced to the first day of its month (or year); ``day`` keeps it."""
    found = parse_date(value)
    if found is None:
        return None
    if precision == "year":
        return date(found.year, 1, 1)
    if precision == "month":
        return date(found.year, found.month, 1)
    return found


def age_at(birth: str | date | datetime | None, when: str | date | datetime | None) -> int | None:
    """Whole years between two exact dates (computed before either is coarsened); None when
    unknown or implausible."""
    born, then = parse_date(birth), parse_date(when)
    if born is None or then is None:
        return None
    years = then.year - born.year - ((then.month, then.day) < (born.month, born.day))
    return years if 0 <= years <= 130 else None
