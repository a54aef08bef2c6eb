"""DICOMweb harvester: QIDO-RS study and series queries against a PACS → pseudonymised records.

``GET {base}/studies?offset=&limit=&includefield=…`` is paged until a short page; for each
study whose study-level attributes changed since the last run (keyed hash: a new series or
instance changes the related counts), ``GET {base}/studies/{uid}/series`` gives modality,
body part examined and manufacturer per series. An unchanged study costs no further request
and no write. Patient ID, name, birth date, Study Instance UID and accession number never
reach the store: the patient and the study become keyed pseudonyms, the birth date an age at
the study and a birth year, the study date a month.

Counts: every study read and, once per run, its patient are ``seen``; each is then
``unchanged`` (skipped by hash), ``created``/``updated`` (written) or ``invalid``. Source
settings (``ctx.config``): ``page_size`` (studies per QIDO-RS page, default 200),
``timeout``, ``total_timeout`` (seconds per request), ``retries``, ``max_page_bytes`` and
``patient_namespace``.

Run errors name a study only by a prefix of its pseudonym: the Study Instance UID is part of
a series query URL, so a failed series query is reported without its URL, and the fetch
policy keeps paths out of :mod:`catalogue.harvest.http`'s logs (``log_paths=False``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from typing import Any
from urllib.parse import quote, urlencode

import orjson

from catalogue.harvest.base import RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch
from catalogue.harvest.records import RecordHarvester
from catalogue.model.records import StudyRecord, SubjectRecord
from catalogue.privacy.pseudonymise import age_at, coarsen, parse_date
from catalogue.store.records import merge_subjects

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
        self.policy = FetchPolicy()
        self._subjects_read: set[str] = set()  # patients counted as seen in this run
        self._described: set[str] = set()  # patients whose demographics are written or known

    @staticmethod
    def _setting(ctx: RunContext, name: str, default: float, *, minimum: float,
                 whole: bool = False) -> Any:
        raw = ctx.config.get(name, default)
        try:
            if isinstance(raw, bool):
                raise ValueError(name)
            number = int(raw) if whole else float(raw)
        except (TypeError, ValueError):
            raise SourceUnreadable(f"source setting {name!r} must be a number") from None
        if number < minimum:
            raise SourceUnreadable(f"source setting {name!r} must be at least {minimum:g}")
        return number

    def _configure(self, ctx: RunContext) -> None:
        """Paging and fetch limits from the source's settings (checked once, before reading)."""
        self.page_size = self._setting(ctx, "page_size", self.page_size, minimum=1, whole=True)
        self.policy = FetchPolicy(
            timeout=self._setting(ctx, "timeout", 30.0, minimum=0.001),
            total_timeout=self._setting(ctx, "total_timeout", 120.0, minimum=0.001),
            retries=self._setting(ctx, "retries", 3, minimum=0, whole=True),
            max_bytes=self._setting(ctx, "max_page_bytes", 50 * 1024 * 1024, minimum=1,
                                    whole=True),
            allow_private=ctx.allow_private,
            allowed_origins=ctx.allowed_origins,
            log_paths=False,  # series URLs carry Study Instance UIDs
        )

    def _get(self, ctx: RunContext, url: str) -> list[dict[str, Any]]:
        started = time.perf_counter()
        try:
            result = fetch(url, self.policy, accept=ACCEPT, bearer_token=ctx.bearer_token)
        finally:
            ctx.timed("fetch", time.perf_counter() - started)
        if result.status == 204 or not result.content.strip():
            return []
        try:
            found = orjson.loads(result.content)
        except orjson.JSONDecodeError:
            raise FetchError("the answer is not DICOM JSON", url=url,
                             kind="bad_content") from None
        if not isinstance(found, list) or not all(isinstance(i, dict) for i in found):
            raise FetchError("the answer is not a DICOM JSON array", url=url, kind="bad_content")
        return found

    def batches(self, ctx: RunContext) -> Iterator[list[SubjectRecord]]:
        base = ctx.url.rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise SourceUnreadable("a DICOMweb source is an http(s) URL (the QIDO-RS base)")
        self._configure(ctx)
        namespace = str(ctx.config.get("patient_namespace") or "dicomweb")
        for url, studies in self._walk(ctx, base, STUDY_FIELDS):
            records: list[SubjectRecord] = []
            for position, study in enumerate(studies):
                record = self._study(ctx, base, study, namespace, f"{url} #{position}")
                if record is not None:
                    records.append(record)
            yield merge_subjects(records)
        # QIDO-RS has no snapshot: a study stored or deleted during the walk can shift the
        # pages so that another one is skipped. Before deletions, stored studies the walk did
        # not see are looked for once more (UIDs only), so a shifted page deletes nothing.
        if ctx.complete and ctx.modified_since is None and set(self.known.studies) - \
                self.seen_studies:
            for _url, studies in self._walk(ctx, base, (STUDY_UID, PATIENT_ID, ISSUER),
                                            confirming=True):
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

    def _walk(self, ctx: RunContext, base: str, fields: tuple[str, ...], *,
              confirming: bool = False) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Pages of the study query until a short page. The first page failing makes the
        source unreadable (unless ``confirming``: then, as for any later page, the run is
        incomplete and deletes nothing)."""
        offset = 0
        walked: set[str] = set()
        while True:
            # includefield repeated: some servers (Orthanc) ignore an encoded comma list
            query = urlencode([("offset", offset), ("limit", self.page_size),
                               *(("includefield", f) for f in fields)])
            url = f"{base}/studies?{query}"
            try:
                studies = self._get(ctx, url)
            except FetchError as exc:
                if offset == 0 and not confirming:
                    raise SourceUnreadable(f"QIDO-RS study query failed: {exc.message}") from None
                ctx.complete = False
                ctx.error(f"QIDO-RS study query failed: {exc.message}", location=url)
                return
            uids = {u for s in studies if isinstance(u := value(s, STUDY_UID), str)}
            if offset and uids and uids <= walked:
                # a whole page of studies already read: the server ignores the offset
                ctx.complete = False
                ctx.error("QIDO-RS paging does not advance (the PACS ignores offset): stopped "
                          "reading", location=url)
                return
            walked |= uids
            yield url, studies
            if len(studies) < self.page_size:
                return
            offset += len(studies)

    def _subject(self, ctx: RunContext, study: dict[str, Any], namespace: str
                 ) -> tuple[SubjectRecord, date | None]:
        """The study's patient: with demographics the first time they need writing in this
        run, else a reference by key only. Counted as seen (and unchanged) once per run."""
        key = self._subject_key(study, namespace)
        born = parse_date(value(study, BIRTH_DATE))
        raw_sex = value(study, SEX)
        sex = _SEXES.get(str(raw_sex or "").strip().upper()) or (
            "unknown" if raw_sex is not None else None)
        year = born.year if born else None
        digest = self.pseudonymiser.content_hash(orjson.dumps([sex, year]))
        self.mark_seen("subject", key)
        if key not in self._subjects_read:
            self._subjects_read.add(key)
            ctx.count("seen")
            if self.unchanged("subject", key, digest):
                ctx.count("unchanged")
                self._described.add(key)
        if key in self._described:
            return SubjectRecord(key), born
        return SubjectRecord(key, sex, year, digest), born

    def _study(self, ctx: RunContext, base: str, study: dict[str, Any], namespace: str,
               location: str) -> SubjectRecord | None:
        ctx.count("seen")
        uid = value(study, STUDY_UID)
        patient_id = value(study, PATIENT_ID)
        if not isinstance(uid, str) or not uid.strip():
            ctx.count("invalid")
            ctx.error("study without a Study Instance UID", location=location)
            return None
        uid = uid.strip()
        pseudonyms = self.pseudonymiser
        key = pseudonyms.study_key(uid)
        label = f"study {key[:12]}"  # the UID itself is an identifier: never in errors
        if not isinstance(patient_id, str) or not patient_id.strip():
            self.mark_seen("study", key)  # what the store holds for it stays
            ctx.count("invalid")
            ctx.error("study without a Patient ID", record=label, location=location)
            return None
        subject, born = self._subject(ctx, study, namespace)
        # the patient's key is part of the hash: a study that moves to another subject key
        # (another patient namespace) is written again, never left behind with its old subject
        digest = pseudonyms.content_hash(orjson.dumps(
            {"subject": subject.key, **{t: study.get(t) for t in STUDY_FIELDS}},
            option=orjson.OPT_SORT_KEYS))
        self.mark_seen("study", key)
        if self.unchanged("study", key, digest):
            ctx.count("unchanged")
            return self._described_by(subject)  # nothing written unless demographics changed
        series_url = f"{base}/studies/{quote(uid, safe='')}/series?" + urlencode(
            [("includefield", f) for f in SERIES_FIELDS])
        try:
            series = self._get(ctx, series_url)
        except FetchError as exc:
            # keep what the store has for this study; try again next run. The message names
            # neither the URL nor anything else that holds the UID.
            ctx.count("invalid")
            ctx.error(f"QIDO-RS series query failed: {_reason(exc, uid)}", record=label,
                      location=f"{base}/studies/…/series")
            return None
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
        self._described_by(subject)
        return subject

    def _described_by(self, subject: SubjectRecord) -> SubjectRecord | None:
        """Note that ``subject`` carries its demographics (later studies of the patient only
        refer to it); ``None`` for a bare reference with nothing to write."""
        if subject.content_hash is not None:
            self._described.add(subject.key)
            return subject
        return subject if subject.studies else None


def _reason(exc: FetchError, uid: str) -> str:
    """Why a fetch failed, without its URL (a series query URL holds the Study Instance UID)."""
    reason = exc.message.removeprefix(f"cannot fetch {exc.url}: ")
    if uid in reason or quote(uid, safe="") in reason or "://" in reason:
        reason = exc.kind.replace("_", " ")
        if exc.http_status:
            reason = f"HTTP {exc.http_status}"
    return reason


def _body_part(term: str) -> str:
    """A DICOM Body Part Examined defined term → a body-parts vocabulary id (else
    ``dicom:TERM``)."""
    from catalogue.fhir.mapping import body_part_id

    return body_part_id("dicom", term.strip().upper())
