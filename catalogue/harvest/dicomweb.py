"""DICOMweb harvester: QIDO-RS study and series queries against a PACS → pseudonymised records.

``GET {base}/studies?offset=&limit=&includefield=…`` is paged until a short page; for each
study whose study-level attributes changed since the last run (keyed hash: a new series or
instance changes the related counts), ``GET {base}/studies/{uid}/series`` gives modality,
body part examined and manufacturer per series. An unchanged study costs no further request
and no write. Patient ID, name, birth date, Study Instance UID and accession number never
reach the store: the patient and the study become keyed pseudonyms, the birth date an age at
the study and a birth year, the study date a month.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import orjson

from catalogue.harvest.base import RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch
from catalogue.harvest.records import RecordHarvester
from catalogue.model.records import StudyRecord, SubjectRecord
from catalogue.privacy.pseudonymise import age_at, coarsen, parse_date

ACCEPT = "application/dicom+json, application/json;q=0.9"
# DICOM tags (group+element, as DICOM JSON names them)
STUDY_UID, STUDY_DATE, ACCESSION = "0020000D", "00080020", "00080050"
PATIENT_ID, ISSUER, BIRTH_DATE, SEX, AGE = "00100020", "00100021", "00100030", "00100040", \
    "00101010"
MODALITIES_IN_STUDY, N_SERIES, N_INSTANCES = "00080061", "00201206", "00201208"
MODALITY, BODY_PART, MANUFACTURER, N_SERIES_INSTANCES = "00080060", "00180015", "00080070", \
    "00201209"
STUDY_FIELDS = (STUDY_UID, STUDY_DATE, PATIENT_ID, ISSUER, BIRTH_DATE, SEX, AGE,
                MODALITIES_IN_STUDY, N_SERIES, N_INSTANCES)
SERIES_FIELDS = (MODALITY, BODY_PART, MANUFACTURER, N_SERIES_INSTANCES)
_SEXES = {"M": "male", "F": "female", "O": "other"}


def value(item: dict[str, Any], tag: str) -> Any:
    """The first value of a DICOM JSON attribute (``None`` when absent or empty)."""
    found = item.get(tag)
    if not isinstance(found, dict):
        return None
    values = found.get("Value")
    if not isinstance(values, list) or not values:
        return None
    first = values[0]
    if isinstance(first, dict) and "Alphabetic" in first:  # person names
        return first["Alphabetic"]
    return first


def values(item: dict[str, Any], tag: str) -> list[Any]:
    found = item.get(tag)
    if not isinstance(found, dict) or not isinstance(found.get("Value"), list):
        return []
    return [v for v in found["Value"] if v not in (None, "")]


def _int(raw: Any) -> int | None:
    try:
        number = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    return number if number >= 0 else None


def _age_string(raw: Any) -> int | None:
    """DICOM AS (``065Y``, ``030M``...) → whole years."""
    text = str(raw or "").strip().upper()
    if len(text) != 4 or not text[:3].isdigit():
        return None
    n = int(text[:3])
    return {"Y": n, "M": n // 12, "W": n // 52, "D": n // 365}.get(text[3])


class DicomwebHarvester(RecordHarvester):
    kind = "dicomweb"

    def __init__(self, page_size: int = 200) -> None:
        super().__init__()
        self.page_size = page_size

    def _policy(self, ctx: RunContext) -> FetchPolicy:
        return FetchPolicy(
            timeout=float(ctx.config.get("timeout", 30.0)),
            total_timeout=float(ctx.config.get("total_timeout", 120.0)),
            retries=int(ctx.config.get("retries", 3)),
            max_bytes=int(ctx.config.get("max_page_bytes", 50 * 1024 * 1024)),
            allow_private=ctx.allow_private,
            allowed_origins=ctx.allowed_origins,
        )

    def _get(self, ctx: RunContext, url: str) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            result = fetch(url, self._policy(ctx), accept=ACCEPT, bearer_token=ctx.bearer_token)
        finally:
            ctx.timed("fetch", time.perf_counter() - started)
        if result.status == 204 or not result.content.strip():
            return []
        try:
            found = orjson.loads(result.content)
        except orjson.JSONDecodeError as exc:
            raise FetchError(f"the answer is not DICOM JSON ({exc})", url=url,
                             kind="http_status") from None
        if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
            raise FetchError("the answer is not a DICOM JSON array", url=url, kind="http_status")
        return found

    def batches(self, ctx: RunContext) -> Iterator[list[SubjectRecord]]:
        base = ctx.url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise SourceUnreadable("a DICOMweb source is an http(s) URL (the QIDO-RS base)")
        namespace = str(ctx.config.get("patient_namespace") or "dicomweb")
        for url, studies in self._walk(ctx, base, STUDY_FIELDS):
            records: dict[str, SubjectRecord] = {}
            for position, study in enumerate(studies):
                record = self._study(ctx, base, study, namespace, f"{url} #{position}")
                if record is not None:
                    found = records.get(record.key)
                    if found is None:
                        records[record.key] = record
                    else:
                        found.studies.extend(record.studies)
            yield list(records.values())
        # QIDO-RS has no snapshot: a study stored or deleted during the walk can shift the
        # pages so that another one is skipped. Before deletions, stored studies the walk did
        # not see are looked for once more (UIDs only), so a shifted page deletes nothing.
        if ctx.complete and ctx.modified_since is None and set(self.known.studies) - \
                self.seen_studies:
            for _url, studies in self._walk(ctx, base, (STUDY_UID, PATIENT_ID, ISSUER)):
                for study in studies:
                    uid, patient_id = value(study, STUDY_UID), value(study, PATIENT_ID)
                    if not (isinstance(uid, str) and uid.strip() and isinstance(patient_id, str)
                            and patient_id.strip()):
                        continue
                    key = self.pseudonymiser.study_key(uid)
                    if key in self.known.studies:
                        self.mark_seen("study", key)
                        self.mark_seen("subject", self._subject_key(study, namespace))
            yield []

    def _subject_key(self, study: dict[str, Any], namespace: str) -> str:
        """The pseudonym of a study's patient: Patient ID within its issuer."""
        issuer = value(study, ISSUER)
        return self.pseudonymiser.subject_key(
            f"{namespace}:{issuer}" if isinstance(issuer, str) and issuer else namespace,
            str(value(study, PATIENT_ID)).strip())

    def _walk(self, ctx: RunContext, base: str, fields: tuple[str, ...]
              ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Pages of the study query until a short page."""
        offset = 0
        while True:
            # includefield repeated: some servers (Orthanc) ignore an encoded comma list
            query = urlencode([("offset", offset), ("limit", self.page_size),
                               *(("includefield", f) for f in fields)])
            url = f"{base}/studies?{query}"
            try:
                studies = self._get(ctx, url)
            except FetchError as exc:
                if offset == 0:
                    raise SourceUnreadable(f"QIDO-RS study query failed: {exc.message}") from None
                ctx.complete = False
                ctx.error(f"QIDO-RS study query failed: {exc.message}", location=url)
                return
            yield url, studies
            if len(studies) < self.page_size:
                return
            offset += len(studies)

    def _study(self, ctx: RunContext, base: str, study: dict[str, Any], namespace: str,
               location: str) -> SubjectRecord | None:
        ctx.count("seen")
        uid = value(study, STUDY_UID)
        patient_id = value(study, PATIENT_ID)
        if not isinstance(uid, str) or not uid.strip():
            ctx.count("invalid")
            ctx.error("study without a Study Instance UID", location=location)
            return None
        pseudonyms = self.pseudonymiser
        key = pseudonyms.study_key(uid)
        label = f"study {key[:12]}"  # the UID itself is an identifier: never in errors
        if not isinstance(patient_id, str) or not patient_id.strip():
            ctx.count("invalid")
            ctx.error("study without a Patient ID", record=label, location=location)
            return None
        subject_key = self._subject_key(study, namespace)
        born = parse_date(value(study, BIRTH_DATE))
        sex = _SEXES.get(str(value(study, SEX) or "").strip().upper(), None)
        subject = SubjectRecord(
            subject_key, sex or ("unknown" if value(study, SEX) is not None else None),
            born.year if born else None)
        subject.content_hash = pseudonyms.content_hash(
            orjson.dumps([subject.sex, subject.birth_year]))
        digest = pseudonyms.content_hash(orjson.dumps(
            {t: study.get(t) for t in STUDY_FIELDS}, option=orjson.OPT_SORT_KEYS))
        if self.unchanged("study", key, digest):
            self.mark_seen("study", key)
            ctx.count("unchanged")
            return subject  # demographics only: nothing changes, nothing is written
        series_url = f"{base}/studies/{uid}/series?" + urlencode(
            [("includefield", f) for f in SERIES_FIELDS])
        try:
            series = self._get(ctx, series_url)
        except FetchError as exc:
            # keep what the store has for this study; try again next run
            self.mark_seen("study", key)
            ctx.count("invalid")
            ctx.error(f"QIDO-RS series query failed: {exc.message}", record=label,
                      location=f"{base}/studies/…/series")
            return subject
        modalities = dict.fromkeys(str(m).strip().upper() for m in values(study,
                                   MODALITIES_IN_STUDY))
        body_parts: dict[str, None] = {}
        manufacturers: dict[str, None] = {}
        instances = 0
        for item in series:
            modality = value(item, MODALITY)
            if isinstance(modality, str) and modality.strip():
                modalities[modality.strip().upper()] = None
            part = value(item, BODY_PART)
            if isinstance(part, str) and part.strip():
                body_parts[_body_part(part)] = None
            maker = value(item, MANUFACTURER)
            if isinstance(maker, str) and maker.strip():
                manufacturers[maker.strip()[:200]] = None
            instances += _int(value(item, N_SERIES_INSTANCES)) or 0
        from catalogue.fhir.mapping import modality_ids

        when = parse_date(value(study, STUDY_DATE))
        age = age_at(born, when) if born and when else _age_string(value(study, AGE))
        subject.studies.append(StudyRecord(
            key=key,
            modalities=modality_ids([m for m in modalities if m]),
            body_parts=list(body_parts),
            manufacturer=next(iter(manufacturers), None),
            series_count=_int(value(study, N_SERIES)) or (len(series) or None),
            instance_count=_int(value(study, N_INSTANCES)) or (instances or None),
            study_month=coarsen(when),
            age_at_study=age,
            content_hash=digest,
        ))
        return subject


def _body_part(term: str) -> str:
    """A DICOM Body Part Examined defined term → a body-parts vocabulary id (else
    ``dicom:TERM``)."""
    from catalogue.fhir.mapping import body_part_id

    return body_part_id("dicom", term.strip().upper())
