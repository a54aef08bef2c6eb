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
    UnsupportedRelease,
    mapping,
    release_of,
    worker,
)
from catalogue.fhir.worker import Outcome
from catalogue.harvest import pools
from catalogue.harvest.base import RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch
from catalogue.harvest.records import RecordHarvester
from catalogue.model.records import ConditionRecord, StudyRecord, SubjectRecord
from catalogue.privacy.pseudonymise import age_at, coarsen

ACCEPT = "application/fhir+json, application/json;q=0.9"
_PARALLEL_FROM = 400  # resources in a run's first chunk before worker processes pay off
# queued to the workers while an earlier chunk is written: bounded in raw bytes (cheap
# Conditions and heavy ImagingStudies differ tenfold per chunk) and in chunks (outcomes held)
_AHEAD_BYTES = 32 << 20
_AHEAD_CHUNKS = 16
_DICT_SIZE = 2048  # a resource already parsed (REST, Bundles) counts as this many bytes


@dataclass
class Item:
    """One resource read from the source (an NDJSON line or a parsed resource), with where it
    was found."""

    location: str
    resource: bytes | dict[str, Any]


@dataclass
class _Chunk:
    done: list[Outcome] | None  # processed in this process
    futures: list[Future[list[Outcome]]]  # or by the workers
    size: int = 0  # raw bytes of its resources


class FhirHarvester(RecordHarvester):
    kind = "fhir"

    def __init__(self, workers: int | None = None, page_size: int = 200,
                 chunk_size: int = 2000, chunk_bytes: int = 8 << 20) -> None:
        super().__init__()
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.page_size = page_size
        self.chunk_size = chunk_size
        self.chunk_bytes = chunk_bytes  # NDJSON: a chunk ends at either limit
        self.patients: dict[str, mapping.PatientFacts] = {}  # this run only, never stored
        self.patient_hashes: dict[str, str] = {}
        self.emitted: set[str] = set()  # subject keys whose demographics were sent this run
        self._executor: ProcessPoolExecutor | None = None
        self.release: str | None = None  # the source's declared or announced release
        self._initialised = False

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
            # the workers validate the chunks queued ahead while an earlier one is written: with
            # a few queued they went idle during the writes of a file of cheap resources
            pending: deque[_Chunk] = deque()
            queued = 0
            for chunk in items:
                pending.append(self._submit(ctx, chunk))
                queued += pending[-1].size
                while queued > _AHEAD_BYTES or len(pending) > _AHEAD_CHUNKS:
                    queued -= pending[0].size
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

    def _lines(self, name: str, lines: Iterable[bytes]) -> Iterator[list[Item]]:
        chunk: list[Item] = []
        size = 0
        for number, line in enumerate(lines, 1):
            if not line or line.isspace():  # (strip() would copy every line)
                continue
            chunk.append(Item(f"{name}:{number}", line))
            size += len(line)
            if len(chunk) >= self.chunk_size or size >= self.chunk_bytes:
                yield chunk
                chunk = []
                size = 0
        if chunk:
            yield chunk

    def _ndjson(self, ctx: RunContext) -> Iterator[list[Item]]:
        self.release = self._declared_release(ctx)
        if self._is_remote(ctx.url):
            content = self._get(ctx, ctx.url, first=True)
            yield from self._lines(Path(urlsplit(ctx.url).path).name or ctx.url,
                                   content.splitlines())
            return
        for path in self._files(ctx):
            try:
                with path.open("rb") as fh:
                    yield from self._lines(path.name, fh)
            except OSError as exc:
                ctx.complete = False
                ctx.error(f"cannot read {path.name}: {exc.strerror}", location=path.name)

    def _bundle(self, ctx: RunContext) -> Iterator[list[Item]]:
        self.release = self._declared_release(ctx)
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
            items.append(Item(f"{name} entry {number}", resource))
        items.sort(key=lambda i: _type_of(i.resource) != "Patient")
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
        ctx.state["fhir_release"] = self.release = release
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
                                          resource))
                items.sort(key=lambda i: _type_of(i.resource) != "Patient")
                yield items
                url = None
                for link in bundle.get("link") or []:
                    if isinstance(link, dict) and link.get("relation") == "next" and \
                            isinstance(link.get("url"), str):
                        url = urljoin(base, link["url"])

    # -- records ------------------------------------------------------------------------------
    def _submit(self, ctx: RunContext, items: list[Item]) -> _Chunk:
        """Start processing a chunk: in this process when small, else in the workers."""
        work = [(item.location, item.resource) for item in items]
        size = sum(_DICT_SIZE if isinstance(r, dict) else len(r) for _, r in work)
        if not self._initialised:  # this process's own state, for small chunks
            worker.init(self.pseudonymiser.key, self._namespace(ctx), self.known.by_kind(),
                        self.release)
            self._initialised = True
        # once the workers run, small chunks go to them too: a run's last chunk of heavy
        # ImagingStudies, validated here, held the writes up
        if self.workers < 2 or (self._executor is None and len(work) < _PARALLEL_FROM):
            started = time.perf_counter()
            done = worker.process(work)
            ctx.timed("process", time.perf_counter() - started)
            return _Chunk(done, [], size)
        if self._executor is None:
            self._executor = pools.pool(
                self.workers, worker.init,
                (self.pseudonymiser.key, self._namespace(ctx), self.known.by_kind(),
                 self.release))
        share = max(1, -(-len(work) // self.workers))
        futures = [self._executor.submit(worker.process, work[i:i + share])
                   for i in range(0, len(work), share)]
        return _Chunk(None, futures, size)

    @staticmethod
    def _namespace(ctx: RunContext) -> str:
        return str(ctx.config.get("patient_namespace") or "fhir")

    def _records(self, ctx: RunContext, chunk: _Chunk) -> list[SubjectRecord]:
        started = time.perf_counter()
        outcomes = chunk.done if chunk.done is not None else [
            outcome for future in chunk.futures for outcome in future.result()]
        ctx.timed("process_wait", time.perf_counter() - started)
        out: dict[str, SubjectRecord] = {}

        def subject(o: Outcome) -> SubjectRecord | None:
            if o.subject_key is None:
                ctx.count("invalid")
                ctx.error(f"{o.kind} has no Patient subject", record=o.record,
                          location=o.location)
                return None
            record = out.get(o.subject_key)
            if record is None:
                record = out[o.subject_key] = SubjectRecord(o.subject_key)
            patient = self.patients.get(o.subject_key)
            # demographics go with the subject's first record of the run, unless the store
            # holds them already (an unchanged Patient was counted as such: not twice)
            if o.subject_key not in self.emitted and patient is not None and \
                    self.known.subjects.get(o.subject_key) != self.patient_hashes[o.subject_key]:
                record.sex = patient.sex
                record.birth_year = patient.birth_date.year if patient.birth_date else None
                record.content_hash = self.patient_hashes[o.subject_key]
                self.emitted.add(o.subject_key)
            return record

        # patients first (their birth dates give the ages), then what refers to them
        for o in sorted(outcomes, key=lambda o: o.kind != "Patient"):
            if o.status == "skipped":
                ctx.count("skipped")
                continue
            ctx.count("seen")
            if o.status == "invalid":
                ctx.count("invalid")
                ctx.error(o.message, record=o.record, location=o.location)
                continue
            if o.message:
                ctx.error(o.message, record=o.record, location=o.location, severity="warning")
            if o.kind == "Patient":
                self.patients[o.key] = o.facts
                self.patient_hashes[o.key] = o.content_hash
                if o.status == "unchanged":
                    ctx.count("unchanged")
                    continue
                self.emitted.discard(o.key)
                if o.key in self.known.subjects or o.key in self.seen_subjects:
                    subject(o)  # demographics of a stored subject changed
                continue
            if o.status == "unchanged":
                ctx.count("unchanged")
                self.mark_seen(worker.KIND[o.kind], o.key)
                if o.subject_key:
                    self.mark_seen("subject", o.subject_key)
                continue
            record = subject(o)
            if record is None:
                continue
            facts = o.facts
            if isinstance(facts, mapping.StudyFacts):
                patient = self.patients.get(record.key)
                if patient is None:
                    ctx.error("ImagingStudy refers to a Patient the source does not hold "
                              "(or not yet): stored without sex and age", record=o.record,
                              location=o.location, severity="warning")
                record.studies.append(StudyRecord(
                    key=o.key, modalities=mapping.modality_ids(facts.modalities),
                    body_parts=mapping.body_part_ids(facts.body_sites),
                    manufacturer=facts.manufacturer, series_count=facts.series_count,
                    instance_count=facts.instance_count,
                    study_month=coarsen(facts.started, self._precision(ctx)),
                    age_at_study=age_at(patient.birth_date if patient else None, facts.started),
                    content_hash=o.content_hash))
            elif isinstance(facts, mapping.ConditionFacts):
                if not facts.codes:
                    ctx.error("Condition has no coded diagnosis; kept without codes",
                              record=o.record, location=o.location, severity="warning")
                record.conditions.append(ConditionRecord(o.key, facts.codes, o.content_hash))
        return list(out.values())

    @staticmethod
    def _precision(ctx: RunContext) -> Any:
        precision = str(ctx.config.get("date_precision") or "month")
        return precision if precision in ("month", "year") else "month"


def _type_of(resource: bytes | dict[str, Any]) -> str:
    return str(resource.get("resourceType")) if isinstance(resource, dict) else ""
