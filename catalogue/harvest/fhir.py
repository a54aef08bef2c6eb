"""FHIR harvester: Patient, ImagingStudy and Condition resources → pseudonymised records.

Inputs (``mode`` in the source's configuration, else guessed from the URL):

- ``rest``: a FHIR R4/R4B/R5 server. ``GET [base]/metadata`` gives the release (DSTU2/STU3
  refused); then ``ImagingStudy?_include=ImagingStudy:subject`` and
  ``Condition?_include=Condition:subject`` are paged through their Bundle ``next`` links,
  with ``_lastUpdated=gt…`` on incremental runs and a bearer token when configured.
- ``ndjson``: Bulk Data export files (a file, a folder of ``*.ndjson``, or a URL); a bad line
  is reported with its file and line number and the rest lands.
- ``bundle``: a transaction, collection or searchset Bundle (file or URL).

Each resource is hashed (keyed, canonical JSON without ``meta``); a resource whose hash the store
already holds is neither validated nor written. The others are validated with ``fhir.resources``
(:mod:`catalogue.fhir`) and mapped (:mod:`catalogue.fhir.mapping`) in worker processes. Only
subjects with at least one imaging study or condition are kept.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import orjson

from catalogue.fhir import (
    READ_RELEASES,
    RESOURCE_TYPES,
    UnsupportedRelease,
    mapping,
    release_of,
    sniff_release,
    validate_chunk,
)
from catalogue.harvest.base import RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch
from catalogue.harvest.records import RecordHarvester
from catalogue.model.records import ConditionRecord, StudyRecord, SubjectRecord
from catalogue.privacy.pseudonymise import age_at, coarsen

ACCEPT = "application/fhir+json, application/json;q=0.9"
_RECORD_KIND = {"Patient": "subject", "ImagingStudy": "study", "Condition": "condition"}
_PARALLEL_FROM = 400  # changed resources in a chunk before worker processes pay off


@dataclass
class Item:
    """One resource read from the source, with where it was found."""

    location: str
    resource: dict[str, Any]
    release: str | None = None  # the source's declared release, when known


@dataclass
class _Chunk:
    changed: list[_Prepared]
    unchanged: list[_Prepared]
    done: list[tuple[list[str], Any]] | None  # validated in this process
    futures: list[Future[list[tuple[list[str], Any]]]]  # or being validated by the workers


@dataclass
class _Prepared:
    item: Item
    kind: str
    key: str
    content_hash: str
    subject_ref: str | None
    release: str


def _canonical(resource: dict[str, Any]) -> bytes:
    return orjson.dumps({k: v for k, v in resource.items() if k not in ("meta", "text")},
                        option=orjson.OPT_SORT_KEYS)


class FhirHarvester(RecordHarvester):
    kind = "fhir"

    def __init__(self, workers: int | None = None, page_size: int = 200,
                 chunk_size: int = 2000) -> None:
        super().__init__()
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.page_size = page_size
        self.chunk_size = chunk_size
        self.patients: dict[str, mapping.PatientFacts] = {}  # this run only, never stored
        self.patient_hashes: dict[str, str] = {}
        self.emitted: set[str] = set()  # subject keys whose demographics were sent this run
        self._executor: ProcessPoolExecutor | None = None
        self._subject_keys: dict[str, str] = {}  # this run only

    # -- the run ------------------------------------------------------------------------------
    def batches(self, ctx: RunContext) -> Iterator[list[SubjectRecord]]:
        mode = self._mode(ctx)
        try:
            if mode == "rest":
                items: Iterable[list[Item]] = self._rest(ctx)
            elif mode == "ndjson":
                items = self._ndjson(ctx)
            else:
                items = self._bundle(ctx)
            # one chunk is validated in the workers while the next is read and prepared and
            # the previous one is written
            pending: deque[_Chunk] = deque()
            for chunk in items:
                pending.append(self._submit(ctx, chunk))
                if len(pending) > 2:
                    yield self._records(ctx, pending.popleft())
            while pending:
                yield self._records(ctx, pending.popleft())
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True, cancel_futures=True)
                self._executor = None

    def _mode(self, ctx: RunContext) -> str:
        mode = str(ctx.config.get("mode") or "")
        if mode:
            if mode not in ("rest", "ndjson", "bundle"):
                raise SourceUnreadable(f"unknown FHIR source mode {mode!r}: use rest, ndjson "
                                       "or bundle")
            return mode
        url = ctx.url
        local = url.startswith("file://") or not urlsplit(url).scheme
        path = urlsplit(url).path.lower()
        if local:
            target = Path(url.removeprefix("file://"))
            if target.is_dir() or path.endswith((".ndjson", ".jsonl", ".ndjson.gz")):
                return "ndjson"
            return "bundle"
        if path.endswith((".ndjson", ".jsonl")):
            return "ndjson"
        if path.endswith(".json"):
            return "bundle"
        return "rest"

    def _declared_release(self, ctx: RunContext) -> str | None:
        declared = ctx.config.get("fhir_version")
        if not declared:
            return None
        try:
            return release_of(str(declared))
        except UnsupportedRelease as exc:
            raise SourceUnreadable(str(exc)) from None

    # -- reading: files -----------------------------------------------------------------------
    def _files(self, ctx: RunContext) -> list[Path]:
        target = Path(ctx.url.removeprefix("file://"))
        if target.is_dir():
            files = sorted(p for p in target.iterdir()
                           if p.is_file() and p.name.endswith((".ndjson", ".jsonl")))
            if not files:
                raise SourceUnreadable(f"{target} holds no .ndjson files")
        elif target.is_file():
            files = [target]
        else:
            raise SourceUnreadable(f"cannot read {target}: no such file or folder")

        def first_type(path: Path) -> str:
            with path.open("rb") as fh:
                for line in fh:
                    if line.strip():
                        try:
                            return str(orjson.loads(line).get("resourceType"))
                        except (orjson.JSONDecodeError, AttributeError):
                            return ""
            return ""
        # patients first: ages at study need their birth dates
        return sorted(files, key=lambda p: (first_type(p) != "Patient", p.name))

    def _lines(self, ctx: RunContext, name: str, lines: Iterable[bytes],
               release: str | None) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            location = f"{name}:{number}"
            try:
                resource = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                ctx.count("seen")
                ctx.count("invalid")
                ctx.error(f"line {number} is not valid JSON ({exc})", location=location)
                continue
            if not isinstance(resource, dict):
                ctx.count("seen")
                ctx.count("invalid")
                ctx.error(f"line {number} is not a FHIR resource (a JSON object)",
                          location=location)
                continue
            chunk.append(Item(location, resource, release))
            if len(chunk) >= self.chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _ndjson(self, ctx: RunContext) -> Iterator[list[Item]]:
        release = self._declared_release(ctx)
        if self._is_remote(ctx.url):
            content = self._get(ctx, ctx.url, first=True)
            yield from self._lines(ctx, Path(urlsplit(ctx.url).path).name or ctx.url,
                                   content.splitlines(), release)
            return
        for path in self._files(ctx):
            try:
                with path.open("rb") as fh:
                    yield from self._lines(ctx, path.name, fh, release)
            except OSError as exc:
                ctx.complete = False
                ctx.error(f"cannot read {path.name}: {exc.strerror}", location=path.name)

    def _bundle(self, ctx: RunContext) -> Iterator[list[Item]]:
        release = self._declared_release(ctx)
        if self._is_remote(ctx.url):
            content = self._get(ctx, ctx.url, first=True)
            name = ctx.url
        else:
            path = Path(ctx.url.removeprefix("file://"))
            try:
                content = path.read_bytes()
            except OSError as exc:
                raise SourceUnreadable(f"cannot read {path}: {exc.strerror}") from None
            name = path.name
        try:
            bundle = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            raise SourceUnreadable(f"{name} is not valid JSON ({exc})") from None
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise SourceUnreadable(f"{name} is not a FHIR Bundle")
        items = []
        for number, entry in enumerate(bundle.get("entry") or []):
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                ctx.count("seen")
                ctx.count("invalid")
                ctx.error(f"entry {number} has no resource", location=f"{name} entry {number}")
                continue
            items.append(Item(f"{name} entry {number}", resource, release))
        items.sort(key=lambda i: i.resource.get("resourceType") != "Patient")
        for start in range(0, len(items), self.chunk_size):
            yield items[start:start + self.chunk_size]

    # -- reading: REST ------------------------------------------------------------------------
    @staticmethod
    def _is_remote(url: str) -> bool:
        return urlsplit(url).scheme in ("http", "https")

    def _policy(self, ctx: RunContext) -> FetchPolicy:
        return FetchPolicy(
            timeout=float(ctx.config.get("timeout", 30.0)),
            total_timeout=float(ctx.config.get("total_timeout", 300.0)),
            max_bytes=int(ctx.config.get("max_page_bytes", 100 * 1024 * 1024)),
            allow_private=ctx.allow_private,
            allowed_origins=ctx.allowed_origins,
        )

    def _get(self, ctx: RunContext, url: str, *, first: bool = False) -> bytes:
        started = time.perf_counter()
        try:
            result = fetch(url, self._policy(ctx), accept=ACCEPT, bearer_token=ctx.bearer_token)
        except FetchError as exc:
            if first:
                raise SourceUnreadable(exc.message) from None
            raise
        finally:
            ctx.timed("fetch", time.perf_counter() - started)
        return result.content

    def _rest(self, ctx: RunContext) -> Iterator[list[Item]]:
        base = ctx.url.rstrip("/") + "/"
        declared = self._declared_release(ctx)
        try:
            capability = orjson.loads(self._get(ctx, urljoin(base, "metadata"), first=True))
        except orjson.JSONDecodeError:
            raise SourceUnreadable(f"{base}metadata did not answer with JSON: is this a FHIR "
                                   "server?") from None
        version = capability.get("fhirVersion") if isinstance(capability, dict) else None
        if not version and declared is None:
            raise SourceUnreadable(f"{base}metadata has no fhirVersion: is this a FHIR server?")
        try:
            release = declared or release_of(str(version))
        except UnsupportedRelease as exc:
            raise SourceUnreadable(f"{base}: {exc}") from None
        ctx.state["fhir_release"] = release
        for resource_type in ("ImagingStudy", "Condition"):
            params: dict[str, Any] = {"_include": f"{resource_type}:subject",
                                      "_count": self.page_size}
            if ctx.modified_since is not None:
                params["_lastUpdated"] = "gt" + ctx.modified_since.isoformat()
            url: str | None = f"{base}{resource_type}?{urlencode(params)}"
            seen_pages: set[str] = set()
            page = 0
            while url:
                if url in seen_pages:
                    ctx.complete = False
                    ctx.error("paging loop: a next link points to a page already read; "
                              "stopped", location=url)
                    break
                seen_pages.add(url)
                page += 1
                try:
                    content = self._get(ctx, url, first=page == 1 and resource_type ==
                                        "ImagingStudy")
                    bundle = orjson.loads(content)
                except FetchError as exc:
                    ctx.complete = False
                    ctx.error(f"page could not be fetched: {exc.message}", location=url)
                    break
                except orjson.JSONDecodeError as exc:
                    ctx.complete = False
                    ctx.error(f"page is not valid JSON ({exc})", location=url)
                    break
                if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
                    ctx.complete = False
                    ctx.error("page is not a FHIR Bundle", location=url)
                    break
                items = []
                for number, entry in enumerate(bundle.get("entry") or []):
                    resource = entry.get("resource") if isinstance(entry, dict) else None
                    if isinstance(resource, dict) and resource.get("resourceType") != \
                            "OperationOutcome":
                        items.append(Item(f"{resource_type} page {page} entry {number}",
                                          resource, release))
                items.sort(key=lambda i: i.resource.get("resourceType") != "Patient")
                yield items
                url = None
                for link in bundle.get("link") or []:
                    if isinstance(link, dict) and link.get("relation") == "next" and \
                            isinstance(link.get("url"), str):
                        url = urljoin(base, link["url"])

    # -- records ------------------------------------------------------------------------------
    def _prepare(self, ctx: RunContext, item: Item) -> _Prepared | None:
        resource = item.resource
        kind = str(resource.get("resourceType") or "")
        if kind not in RESOURCE_TYPES:
            ctx.count("skipped")
            return None
        ctx.count("seen")
        label = self._label(kind, resource)
        if not isinstance(resource.get("id"), str) or not resource["id"].strip():
            ctx.count("invalid")
            ctx.error(f"{kind} without an id", record=kind, location=item.location)
            return None
        try:
            sniffed = sniff_release(resource)
        except UnsupportedRelease as exc:
            ctx.count("invalid")
            ctx.error(str(exc), record=label, location=item.location)
            return None
        release = sniffed or item.release or "R4"
        if item.release in READ_RELEASES and sniffed and sniffed != item.release and not (
                {sniffed, item.release} <= {"R4", "R4B"}):
            ctx.error(f"the source declares FHIR {item.release} but this {kind} has the "
                      f"shape of {sniffed}; validated as {sniffed}", record=label,
                      location=item.location, severity="warning")
        pseudonyms = self.pseudonymiser
        namespace = str(ctx.config.get("patient_namespace") or "fhir")
        digest = pseudonyms.content_hash(_canonical(resource))
        if kind == "Patient":
            key = self._subject_key(namespace, f"Patient/{resource['id']}")
            subject_ref: str | None = f"Patient/{resource['id']}"
        elif kind == "ImagingStudy":
            uid = mapping._study_uid(resource)
            key = pseudonyms.study_key(uid if uid else f"fhir:ImagingStudy/{resource['id']}")
            subject_ref = mapping.reference(resource.get("subject"))
        else:
            key = pseudonyms.hash_identifier("condition", f"Condition/{resource['id']}")
            subject_ref = mapping.reference(resource.get("subject"))
        return _Prepared(item, kind, key, digest, subject_ref, release)

    def _subject_key(self, namespace: str, ref: str) -> str:
        key = self._subject_keys.get(ref)
        if key is None:
            key = self._subject_keys[ref] = self.pseudonymiser.subject_key(namespace, ref)
        return key

    @staticmethod
    def _label(kind: str, resource: dict[str, Any]) -> str:
        # a patient's logical id may be an identifier: errors name the line, not the id
        return kind if kind == "Patient" else f"{kind}/{resource.get('id')}"

    def _submit(self, ctx: RunContext, items: list[Item]) -> _Chunk:
        """Prepare a chunk (hash, skip unchanged) and start validating what changed."""
        changed: list[_Prepared] = []
        unchanged: list[_Prepared] = []
        for item in items:
            prepared = self._prepare(ctx, item)
            if prepared is None:
                continue
            if self.unchanged(_RECORD_KIND[prepared.kind], prepared.key, prepared.content_hash):
                unchanged.append(prepared)
            else:
                changed.append(prepared)
        work = [(p.release, p.item.resource) for p in changed]
        if len(work) < _PARALLEL_FROM or self.workers < 2:
            started = time.perf_counter()
            done = validate_chunk(work)
            ctx.timed("validate", time.perf_counter() - started)
            return _Chunk(changed, unchanged, done, [])
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"))
        size = max(1, -(-len(work) // self.workers))
        futures = [self._executor.submit(validate_chunk, work[i:i + size])
                   for i in range(0, len(work), size)]
        return _Chunk(changed, unchanged, None, futures)

    def _records(self, ctx: RunContext, chunk: _Chunk) -> list[SubjectRecord]:
        started = time.perf_counter()
        results = chunk.done if chunk.done is not None else [
            result for future in chunk.futures for result in future.result()]
        ctx.timed("validate_wait", time.perf_counter() - started)
        changed, unchanged = chunk.changed, chunk.unchanged
        namespace = str(ctx.config.get("patient_namespace") or "fhir")
        out: dict[str, SubjectRecord] = {}

        def subject(ref: str | None, p: _Prepared) -> SubjectRecord | None:
            if ref is None or not ref.startswith("Patient/"):
                ctx.count("invalid")
                ctx.error(f"{p.kind} has no Patient subject", record=self._label(
                    p.kind, p.item.resource), location=p.item.location)
                return None
            key = self._subject_key(namespace, ref)
            record = out.get(key)
            if record is None:
                record = out[key] = SubjectRecord(key)
            facts = self.patients.get(ref)
            if key not in self.emitted and facts is not None:
                record.sex, record.birth_year = facts.sex, (
                    facts.birth_date.year if facts.birth_date else None)
                record.content_hash = self.patient_hashes[ref]
                self.emitted.add(key)
            return record

        for p in unchanged:
            if p.kind == "Patient":
                # still needed for the ages of changed studies; no validation
                self.patients[f"Patient/{p.item.resource['id']}"] = mapping.patient(
                    p.item.resource)
                self.patient_hashes[f"Patient/{p.item.resource['id']}"] = p.content_hash
            else:
                self.mark_seen(_RECORD_KIND[p.kind], p.key)
                if p.subject_ref:
                    self.mark_seen("subject", self._subject_key(namespace, p.subject_ref))
            ctx.count("unchanged")
        # patients first, then what refers to them
        order = sorted(range(len(changed)), key=lambda i: changed[i].kind != "Patient")
        for index in order:
            p = changed[index]
            problems, facts = results[index]
            label = self._label(p.kind, p.item.resource)
            if problems:
                ctx.count("invalid")
                ctx.error(f"invalid {p.kind}: " + "; ".join(problems), record=label,
                          location=p.item.location)
                continue
            if isinstance(facts, mapping.PatientFacts):
                self.patients[facts.ref] = facts
                self.patient_hashes[facts.ref] = p.content_hash
                self.emitted.discard(p.key)
                if p.key in self.known.subjects or p.key in self.seen_subjects:
                    subject(facts.ref, p)  # demographics of a stored subject changed
            elif isinstance(facts, mapping.StudyFacts):
                record = subject(facts.subject_ref, p)
                if record is None:
                    continue
                patient = self.patients.get(facts.subject_ref or "")
                if patient is None:
                    ctx.error("ImagingStudy refers to a Patient the source does not hold "
                              "(or not yet): stored without sex and age", record=label,
                              location=p.item.location, severity="warning")
                record.studies.append(StudyRecord(
                    key=p.key, modalities=mapping.modality_ids(facts.modalities),
                    body_parts=mapping.body_part_ids(facts.body_sites),
                    manufacturer=facts.manufacturer, series_count=facts.series_count,
                    instance_count=facts.instance_count,
                    study_month=coarsen(facts.started, self._precision(ctx)),
                    age_at_study=age_at(patient.birth_date if patient else None, facts.started),
                    content_hash=p.content_hash))
            elif isinstance(facts, mapping.ConditionFacts):
                record = subject(facts.subject_ref, p)
                if record is None:
                    continue
                if not facts.codes:
                    ctx.error("Condition has no coded diagnosis; kept without codes",
                              record=label, location=p.item.location, severity="warning")
                record.conditions.append(ConditionRecord(p.key, facts.codes, p.content_hash))
        return list(out.values())

    @staticmethod
    def _precision(ctx: RunContext) -> Any:
        precision = str(ctx.config.get("date_precision") or "month")
        return precision if precision in ("month", "year") else "month"
