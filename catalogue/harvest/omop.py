"""OMOP harvester: an OMOP CDM v5.4 database in PostgreSQL → pseudonymised records.

Source: a ``postgresql://`` URL *without* a password; the password, if the server needs one,
comes from the environment variable named by the source's ``password_env`` setting and is never
stored or logged. The host passes the same address guard as HTTP sources (loopback, private and
local-socket hosts only when an administrator allowed the source) and the connection is pinned
to the checked address. ``connect_timeout`` and ``statement_timeout`` bound every wait. Other
settings: :class:`catalogue.omop.source.OmopSettings`.

Records (queries: :mod:`catalogue.omop.source`; concepts: :mod:`catalogue.omop.concepts`):

- **subject**: a person with at least one stored study or condition. Key: keyed HMAC of
  ``omop:<namespace>`` (the ``namespace`` setting, else the CDM schema) and ``person_id``;
  sex from ``gender_concept_id``, birth year from ``year_of_birth``. ``person_source_value`` is
  never read; birth month and day only to compute ages.
- **condition**: one per ``condition_occurrence`` row: the codes of its standard and source
  concepts (and of its source value when it has no source concept), in their own vocabularies.
  A row without any SNOMED/ICD-10/ICD-O-3 code is skipped.
- **study**: the ``image_occurrence`` rows (series) of one person with one Study Instance UID,
  with the anatomic sites of their ``image_feature`` rows: modality concepts → DICOM modality
  codes, anatomic sites → body parts, series count, month of the first series, age at it (from
  the exact birth date). Key: the keyed pseudonym of the UID (of the row id when the UID is
  blank). A UID used by several persons is kept under the first (lowest ``person_id``); the
  others' series are reported. In a CDM without ``image_occurrence``: each
  ``procedure_occurrence`` row whose concept is an imaging procedure (see
  :func:`catalogue.omop.concepts.is_imaging_procedure`), body parts from the procedure's name.

Every record's keyed hash covers the source columns it is made from (with the person's birth
fields for ages; the server computes an md5 of them, keyed here): a row whose hash the store
holds is neither mapped nor written. A row naming a concept id the concept table lacks is a
per-row error (``table:row id``); the rest lands (a study without that series).

Reading (the database, grouping, mapping) runs in a thread of its own while the base class
writes the previous batch; the run context is only touched by the writing thread.

Incremental runs (``incremental`` setting, after a first complete run): only rows with ids
above the highest ids of the last complete run (kept in the source state) are read, and the
studies they belong to; such a run applies no deletions (it sets ``ctx.modified_since`` to the
previous run's time if the caller did not), the next full run does. Changed demographics and
changed or deleted old rows are picked up by full runs only.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from itertools import chain
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from catalogue.harvest.base import RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, check_url
from catalogue.harvest.records import RecordHarvester
from catalogue.model.records import ConditionRecord, StudyRecord, SubjectRecord
from catalogue.omop.concepts import (
    VOCABULARY_SYSTEMS,
    Concept,
    ConceptCache,
    body_part_of,
    body_parts_in_name,
    condition_codes,
    is_imaging_procedure,
    modalities_of,
    sex_of,
    unmapped_modality,
)
from catalogue.omop.source import (
    ConditionRow,
    FactRow,
    OmopError,
    OmopSettings,
    OmopSource,
    ProcedureRow,
    StudyRow,
)

log = logging.getLogger(__name__)

#: part of every content hash: changing the mapping rules re-maps every row once
MAPPING_VERSION = "omop-1"
_VERSION = MAPPING_VERSION.encode() + b"|"
#: secret-bearing or indirection parameters a source URL may not carry
_REFUSED_PARAMS = ("password", "sslpassword", "service", "servicefile", "passfile")
_T = TypeVar("_T")


def check_source_url(url: str) -> dict[str, str]:
    """The connection parameters of an OMOP source URL; raises ValueError when the URL is not a
    ``postgresql://`` URL or carries a password (or a service file that could supply one)."""
    text = url.strip()
    if not text.startswith(("postgresql://", "postgres://")):
        raise ValueError("an OMOP source must be a postgresql:// URL")
    try:
        params = conninfo_to_dict(text)
    except psycopg.ProgrammingError:
        raise ValueError("the OMOP source URL is not a valid postgresql:// URL") from None
    for name in _REFUSED_PARAMS:
        if params.get(name):
            what = "a password" if "pass" in name else f"a {name} parameter"
            raise ValueError(f"the OMOP source URL must not carry {what}: name an environment "
                             "variable holding the password with the source's password_env "
                             "setting")
    return {k: str(v) for k, v in params.items() if v is not None}


def describe(params: dict[str, str]) -> str:
    """Where a connection goes, for messages (no user, no password)."""
    host = params.get("host") or "local socket"
    port = params.get("port") or "5432"
    return f"{host}:{port}/{params.get('dbname', '')}"


def _reason(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    return text[:300]


@dataclass
class _Outcome:
    """What reading one batch produced. Built by the reading thread, applied to the run
    context by the writing one (the context is not shared between threads)."""

    subjects: dict[str, SubjectRecord] = field(default_factory=dict)
    size: int = 0  # studies and conditions in ``subjects``
    counts: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, Any]] = field(default_factory=list)
    seen: list[tuple[str, str]] = field(default_factory=list)  # unchanged: (kind, key)
    timings: defaultdict[str, float] = field(default_factory=lambda: defaultdict(float))
    incomplete: bool = False
    state: dict[str, Any] | None = None  # the source state after a complete read

    def error(self, message: str, *, record: str | None = None, location: str | None = None,
              prop: str | None = None, severity: str = "error") -> None:
        self.errors.append({"message": message, "record": record, "location": location,
                            "prop": prop, "severity": severity})

    def subject(self, key: str) -> SubjectRecord:
        record = self.subjects.get(key)
        if record is None:
            record = self.subjects[key] = SubjectRecord(key)
        return record


_DONE = object()


class OmopHarvester(RecordHarvester):
    kind = "omop"
    batch_size = 5000  # studies and conditions per write

    def __init__(self) -> None:
        super().__init__()
        self.concepts = ConceptCache(lambda ids: [])
        self.settings = OmopSettings()
        self.namespace = "omop:"
        # state of the reading thread only
        self._subjects_done: set[str] = set()  # subject keys whose demographics were checked
        self._last_person: tuple[int, str] | None = None
        self._row_errors: Counter[str] = Counter()
        self._warned: set[tuple[str, int]] = set()
        self._modalities: dict[int, list[str]] = {}
        self._body_parts: dict[int, str] = {}
        self._by_value: dict[str, list[tuple[str, str]]] = {}
        self._shared_uids: set[str] = set()  # study keys of UIDs under several persons
        self._studies_done: set[str] = set()  # of those, the keys already stored this run
        self._reading = "the database"
        self._read_seconds = 0.0

    # -- connection ---------------------------------------------------------------------------
    def _connect(self, ctx: RunContext, settings: OmopSettings) -> psycopg.Connection[Any]:
        try:
            params = check_source_url(ctx.url)
        except ValueError as exc:
            raise SourceUnreadable(str(exc)) from None
        target = describe(params)
        self._guard(ctx, params)
        password = None
        if settings.password_env:
            password = os.environ.get(settings.password_env)
            if not password:
                raise SourceUnreadable(f"the source's password variable {settings.password_env} "
                                       "is not set")
        options = (f"-c statement_timeout={int(settings.statement_timeout * 1000)} "
                   f"-c work_mem={settings.work_mem.replace(' ', '')} "
                   "-c default_transaction_read_only=on")
        try:
            conn = psycopg.connect(make_conninfo(
                "", **params, **({"password": password} if password else {}),
                connect_timeout=settings.connect_timeout,
                application_name="cancer-imaging-catalogue-omop", options=options))
        except psycopg.Error as exc:
            raise SourceUnreadable(f"cannot connect to the OMOP database at {target}: "
                                   f"{_reason(exc)}") from None
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        return conn

    @staticmethod
    def _guard(ctx: RunContext, params: dict[str, str]) -> None:
        """Refuse loopback, private and local-socket hosts unless the source may use them;
        pin a single host name to the address checked."""
        hosts = [h.strip() for h in (params.get("hostaddr") or params.get("host") or ""
                                     ).split(",")]
        ports = (params.get("port") or "5432").split(",")
        policy = FetchPolicy(allow_private=ctx.allow_private,
                             allowed_origins=ctx.allowed_origins)
        addresses: list[str] = []
        for index, host in enumerate(hosts):
            if not host or host.startswith(("/", "@")):
                if not ctx.allow_private:
                    raise SourceUnreadable("refused: the OMOP database is reached through a "
                                           "local socket; an administrator must allow private "
                                           "sources (--allow-private)")
                continue
            port = ports[min(index, len(ports) - 1)] or "5432"
            shown = f"[{host}]" if ":" in host else host
            try:
                addresses = check_url(f"http://{shown}:{port}/", policy)
            except FetchError as exc:
                what = exc.message.split(": ", 1)[-1]
                if exc.kind == "blocked_address":
                    raise SourceUnreadable(f"{what} (OMOP database at {host}:{port}); an "
                                           "administrator must allow private sources "
                                           "(--allow-private)") from None
                raise SourceUnreadable(f"cannot connect to the OMOP database at "
                                       f"{describe(params)}: {what}") from None
        if len(hosts) == 1 and addresses and not params.get("hostaddr"):
            params["hostaddr"] = addresses[0]

    # -- the run ------------------------------------------------------------------------------
    def batches(self, ctx: RunContext) -> Iterator[list[SubjectRecord]]:
        """Read in a thread of its own (database, grouping, mapping) while the caller writes
        the previous batch."""
        try:
            self.settings = OmopSettings.from_config(ctx.config)
        except OmopError as exc:
            raise SourceUnreadable(str(exc)) from None
        conn = self._connect(ctx, self.settings)
        stop = threading.Event()
        outcomes: queue.Queue[Any] = queue.Queue(maxsize=2)
        reader: threading.Thread | None = None
        try:
            try:
                source = OmopSource(conn, self.settings)
                since = self._since(ctx, source)
                tops = source.max_ids()
            except OmopError as exc:
                raise SourceUnreadable(str(exc)) from None
            except psycopg.Error as exc:
                raise SourceUnreadable(f"cannot read the OMOP database: {_reason(exc)}") from None
            reader = threading.Thread(target=self._produce, args=(source, since, tops, outcomes,
                                                                  stop),
                                      name="omop-reader", daemon=True)
            reader.start()
            while True:
                item = outcomes.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                self._apply(ctx, item)
                yield list(item.subjects.values())
        finally:
            stop.set()
            if reader is not None and reader.is_alive():
                with contextlib.suppress(psycopg.Error):
                    conn.cancel_safe(timeout=5)
                while reader.is_alive():
                    with contextlib.suppress(queue.Empty):
                        outcomes.get(timeout=0.1)
                reader.join()
            conn.close()

    def _apply(self, ctx: RunContext, outcome: _Outcome) -> None:
        for name, n in outcome.counts.items():
            ctx.count(name, n)
        for error in outcome.errors:
            ctx.error(error["message"], record=error["record"], location=error["location"],
                      prop=error["prop"], severity=error["severity"])
        for kind, key in outcome.seen:
            self.mark_seen(kind, key)
        for stage, seconds in outcome.timings.items():
            ctx.timed(stage, seconds)
        if outcome.incomplete:
            ctx.complete = False
        if outcome.state is not None and ctx.complete:
            ctx.state["omop"] = outcome.state

    def _produce(self, source: OmopSource, since: dict[str, int], tops: dict[str, int],
                 outcomes: queue.Queue[Any], stop: threading.Event) -> None:
        """The reading thread: outcomes into ``outcomes``, then _DONE (or the exception)."""
        def put(item: Any) -> bool:
            while not stop.is_set():
                try:
                    outcomes.put(item, timeout=0.2)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            for outcome in self._read(source, since, tops):
                if not put(outcome):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the writing thread, which raises it
            put(exc)

    def _read(self, source: OmopSource, since: dict[str, int], tops: dict[str, int]
              ) -> Iterator[_Outcome]:
        out = _Outcome()
        try:
            self.concepts = ConceptCache(source.concepts)
            self.namespace = f"omop:{source.namespace}"
            if "condition_occurrence" in source.tables:
                self._reading = "condition_occurrence"
                for rows in self._timed(source.conditions(since.get(self._reading))):
                    self._conditions(source, rows, out)
                    if out.size >= self.batch_size:
                        yield self._ready(out)
                        out = _Outcome()
            else:
                out.error("the CDM has no condition_occurrence table: no conditions read",
                          severity="warning")
            studies_from = source.studies_from
            self._reading = studies_from or "the database"
            if studies_from == "image_occurrence":
                self._shared_uids = {self.pseudonymiser.study_key(uid) for uid in
                                     source.shared_study_uids(since.get(studies_from))}
                for study_rows in self._timed(source.studies(since.get(studies_from))):
                    self._studies(study_rows, out)
                    if out.size >= self.batch_size:
                        yield self._ready(out)
                        out = _Outcome()
            elif studies_from == "procedure_occurrence":
                imaging = self._imaging_procedures(source, since.get(studies_from))
                if imaging:
                    for procedure_rows in self._timed(
                            source.procedures(sorted(imaging), since.get(studies_from))):
                        self._procedures(procedure_rows, imaging, out)
                        if out.size >= self.batch_size:
                            yield self._ready(out)
                            out = _Outcome()
            else:
                out.error("the CDM has neither image_occurrence nor procedure_occurrence: no "
                          "imaging studies read", severity="warning")
            self._summarise_errors(out)
            out.state = {"source": source.schema, "cursors": tops,
                         "harvested_at": datetime.now(UTC).isoformat()}
        except psycopg.Error as exc:
            out.incomplete = True
            out.error(f"reading {self._reading} stopped: {_reason(exc)}; what was read before "
                      "is kept", location=self._reading)
            log.warning("OMOP harvest stopped while reading %s (%s)", self._reading,
                        type(exc).__name__)
        yield self._ready(out)

    def _since(self, ctx: RunContext, source: OmopSource) -> dict[str, int]:
        """Per table, the id above which rows are read (incremental runs), else nothing."""
        previous = ctx.state.get("omop")
        if not isinstance(previous, dict) or previous.get("source") != source.schema:
            return {}
        cursors = previous.get("cursors")
        wanted = ctx.modified_since is not None or self.settings.incremental
        if not wanted or not isinstance(cursors, dict) or not cursors:
            return {}
        if ctx.modified_since is None:
            # only new rows are read: records not seen in this run are not deletions
            try:
                ctx.modified_since = datetime.fromisoformat(str(previous.get("harvested_at")))
            except ValueError:
                ctx.modified_since = datetime.now(UTC)
        return {table: int(cursors[table]) for table in cursors
                if isinstance(cursors[table], int)}

    def _timed(self, batches: Iterator[_T]) -> Iterator[_T]:
        """``batches``, timing the waits for the database (the ``read`` stage, handed over
        with the next outcome)."""
        while True:
            started = time.perf_counter()
            try:
                item = next(batches)
            except StopIteration:
                return
            finally:
                self._read_seconds += time.perf_counter() - started
            yield item

    def _ready(self, out: _Outcome) -> _Outcome:
        """``out`` with the time spent reading since the previous one."""
        out.timings["read"] += self._read_seconds
        self._read_seconds = 0.0
        return out

    # -- helpers ------------------------------------------------------------------------------
    def _digest(self, kind: bytes, source_digest: str) -> str:
        """The keyed hash of a record (the source's md5 of its columns, and the mapping
        version)."""
        return self.pseudonymiser.content_hash(_VERSION + kind + source_digest.encode())

    def _row_error(self, out: _Outcome, table: str, row_id: int, message: str,
                   prop: str | None = None, severity: str = "error") -> None:
        self._row_errors[table] += 1
        if self._row_errors[table] <= self.settings.max_errors_per_table:
            out.error(message, record=f"{table}:{row_id}", location=table, prop=prop,
                      severity=severity)

    def _summarise_errors(self, out: _Outcome) -> None:
        for table, count in sorted(self._row_errors.items()):
            hidden = count - self.settings.max_errors_per_table
            if hidden > 0:
                out.error(f"{hidden} more rows of {table} had problems (not listed one by one)",
                          location=table)

    def _unknown(self, out: _Outcome, table: str, row_id: int,
                 checks: Iterable[tuple[str, int | None]]) -> bool:
        """Report the concept ids of a row the concept table lacks; True if there were any."""
        bad = False
        for prop, concept_id in checks:
            if self.concepts.unknown(concept_id):
                self._row_error(out, table, row_id, f"{prop} {concept_id} is not in the "
                                "concept table", prop=prop)
                bad = True
        return bad

    def _demographics(self, out: _Outcome, row: FactRow) -> str:
        """The subject key of a row's person; the first time in a run, the person's
        demographics are compared with the store's and, if they changed, added to the batch.
        Rows come in person order: one pseudonym per person and stream."""
        last = self._last_person
        if last is not None and last[0] == row.person_id:
            return last[1]
        key = self.pseudonymiser.subject_key(self.namespace, str(row.person_id))
        self._last_person = (row.person_id, key)
        if key in self._subjects_done:
            return key
        self._subjects_done.add(key)
        out.counts["seen"] += 1
        year = row.year_of_birth or (row.birth_datetime.year if row.birth_datetime else None)
        digest = self.pseudonymiser.content_hash(
            f"{MAPPING_VERSION}|person|{row.gender_concept_id}|{year}".encode())
        if self.known.subjects.get(key, "") == digest:  # unchanged (see self.unchanged)
            out.seen.append(("subject", key))
            out.counts["unchanged"] += 1
            return key
        record = out.subject(key)
        record.sex, record.birth_year = sex_of(row.gender_concept_id), year
        record.content_hash = digest
        return key

    @staticmethod
    def _age(row: FactRow, when: date | None) -> int | None:
        """Whole years at ``when`` from the exact birth date (as
        :func:`catalogue.privacy.pseudonymise.age_at`); with the birth year only, the year
        difference, less one before the birth month."""
        year = row.year_of_birth
        if when is None or year is None:
            return None
        month, day = row.month_of_birth, row.day_of_birth
        if not (month and day) and row.birth_datetime is not None:
            month, day = row.birth_datetime.month, row.birth_datetime.day
        if month and day:
            years = when.year - year - ((when.month, when.day) < (month, day))
        else:
            years = when.year - year - (1 if month and when.month < month else 0)
        return years if 0 <= years <= 130 else None

    def _month(self, when: date | None) -> date | None:
        """The study date coarsened (as :func:`catalogue.privacy.pseudonymise.coarsen`)."""
        if when is None:
            return None
        if self.settings.date_precision == "year":
            return date(when.year, 1, 1)
        return date(when.year, when.month, 1)

    # -- conditions ---------------------------------------------------------------------------
    def _conditions(self, source: OmopSource, rows: list[ConditionRow], out: _Outcome) -> None:
        started = time.perf_counter()
        known = self.known.conditions
        changed: list[tuple[ConditionRow, str, str]] = []
        for row in rows:
            key = self.pseudonymiser.hash_identifier(
                "condition", f"{self.namespace}:condition_occurrence/{row.id}")
            digest = self._digest(b"condition", row.digest)
            if known.get(key, "") == digest:
                out.seen.append(("condition", key))
                out.counts["unchanged"] += 1
                self._demographics(out, row)
                continue
            changed.append((row, key, digest))
        out.counts["seen"] += len(rows)
        self.concepts.load(i for row, _k, _d in changed
                           for i in (row.concept_id, row.source_concept_id))
        self._load_values(source, [row.source_value for row, _k, _d in changed
                                   if not row.source_concept_id and row.source_value])
        for row, key, digest in changed:
            if not row.has_person:
                out.counts["invalid"] += 1
                self._row_error(out, "condition_occurrence", row.id,
                                f"person_id {row.person_id} is not in the person table",
                                prop="person_id")
                continue
            if self._unknown(out, "condition_occurrence", row.id, (
                    ("condition_concept_id", row.concept_id),
                    ("condition_source_concept_id", row.source_concept_id))):
                out.counts["invalid"] += 1
                continue
            codes = [*condition_codes(self.concepts.get(row.concept_id)),
                     *condition_codes(self.concepts.get(row.source_concept_id))]
            if not row.source_concept_id and row.source_value:
                codes.extend(self._by_value.get(row.source_value.strip(), []))
            if not codes:
                out.counts["skipped"] += 1  # no SNOMED, ICD-10 or ICD-O-3 code
                continue
            subject = out.subject(self._demographics(out, row))
            subject.conditions.append(ConditionRecord(key, list(dict.fromkeys(codes)), digest))
            out.size += 1
        out.timings["map"] += time.perf_counter() - started

    def _load_values(self, source: OmopSource, values: list[str]) -> None:
        """Codes of source values without a source concept, looked up by concept code in the
        condition vocabularies; a value found in more than one code system gives none."""
        wanted = {v.strip() for v in values} - self._by_value.keys()
        if not wanted:
            return
        if len(self._by_value) > 100_000:
            self._by_value.clear()
        found: dict[str, list[Concept]] = {}
        for concept in source.concepts_by_code(wanted, sorted(VOCABULARY_SYSTEMS)):
            found.setdefault(concept.code.strip(), []).append(concept)
        for value in wanted:
            codes = [c for concept in found.get(value, []) for c in condition_codes(concept)]
            systems = {system for system, _code in codes}
            self._by_value[value] = list(dict.fromkeys(codes)) if len(systems) == 1 else []

    # -- studies ------------------------------------------------------------------------------
    def _modality_ids(self, out: _Outcome, concept_id: int) -> list[str]:
        found = self._modalities.get(concept_id)
        if found is None:
            concept = self.concepts.get(concept_id)
            assert concept is not None
            found = modalities_of(concept, self.settings.imaging_concepts)
            if not found:
                found = [unmapped_modality(concept)]
                out.error(f"modality concept {concept.id} ({concept.name[:80]}) maps to no "
                          f"DICOM modality; kept as {found[0]}", location="image_occurrence",
                          prop="modality_concept_id", severity="warning")
            self._modalities[concept_id] = found
        return found

    def _body_part(self, concept_id: int) -> str:
        found = self._body_parts.get(concept_id)
        if found is None:
            concept = self.concepts.get(concept_id)
            assert concept is not None
            found = self._body_parts[concept_id] = body_part_of(concept)
        return found

    def _studies(self, rows: list[StudyRow], out: _Outcome) -> None:
        started = time.perf_counter()
        pseudonyms = self.pseudonymiser
        known = self.known.studies
        changed: list[tuple[StudyRow, str, str]] = []
        for row in rows:
            key = (pseudonyms.study_key(row.uid) if row.uid else pseudonyms.hash_identifier(
                "study", f"{self.namespace}:image_occurrence/{row.ids[0]}"))
            if key in self._shared_uids and self._shared(out, key, row):
                continue
            digest = self._digest(b"study", row.digest)
            if known.get(key, "") == digest:  # unchanged (see self.unchanged)
                out.seen.append(("study", key))
                out.counts["unchanged"] += 1
                self._demographics(out, row)
                continue
            changed.append((row, key, digest))
        out.counts["seen"] += len(rows)
        self.concepts.load(chain.from_iterable(
            ids for row, _k, _d in changed for ids in (
                row.modality_concept_ids, row.site_concept_ids,
                row.feature_site_concept_ids or ())))
        missing = self.concepts.missing
        modality_map, body_part_map = self._modalities, self._body_parts
        for row, key, digest in changed:
            if not row.has_person:
                out.counts["invalid"] += 1
                self._row_error(out, "image_occurrence", row.ids[0],
                                f"person_id {row.person_id} is not in the person table",
                                prop="person_id")
                continue
            modality_ids, site_ids = row.modality_concept_ids, row.site_concept_ids
            series, when = len(row.ids), min(row.dates)
            if missing and not (missing.isdisjoint(modality_ids)
                                and missing.isdisjoint(site_ids)):
                good = self._good_series(out, row)
                if not good:
                    continue
                modality_ids = [modality_ids[i] for i in good]
                site_ids = [site_ids[i] for i in good]
                series, when = len(good), min(row.dates[i] for i in good)
                digest += ":partial"  # mapped (and reported) again on every run until fixed
            modalities: dict[str, None] = {}
            for modality_id in dict.fromkeys(modality_ids):  # in series order, once each
                if modality_id:
                    found = modality_map.get(modality_id) or self._modality_ids(out, modality_id)
                    modalities.update(dict.fromkeys(found))
            body_parts: dict[str, None] = {}
            for site_id in (*dict.fromkeys(site_ids), *(row.feature_site_concept_ids or ())):
                if not site_id:
                    continue
                if site_id in missing:  # only image_feature rows get here
                    self._feature_site_unknown(out, site_id)
                    continue
                body_parts[body_part_map.get(site_id) or self._body_part(site_id)] = None
            subject = out.subject(self._demographics(out, row))
            subject.studies.append(StudyRecord(
                key=key, modalities=list(modalities), body_parts=list(body_parts),
                series_count=series, study_month=self._month(when),
                age_at_study=self._age(row, when), content_hash=digest))
            out.size += 1
        out.timings["map"] += time.perf_counter() - started

    def _feature_site_unknown(self, out: _Outcome, site_id: int) -> None:
        if ("image_feature", site_id) not in self._warned:
            self._warned.add(("image_feature", site_id))
            out.error(f"anatomic_site_concept_id {site_id} of image_feature rows is not in the "
                      "concept table; ignored", location="image_feature",
                      prop="anatomic_site_concept_id", severity="warning")

    def _good_series(self, out: _Outcome, row: StudyRow) -> list[int]:
        """Positions of a study's series whose concepts the concept table holds; the others
        are reported one by one."""
        good = []
        for index, (row_id, modality_id, site_id) in enumerate(zip(
                row.ids, row.modality_concept_ids, row.site_concept_ids, strict=True)):
            if self._unknown(out, "image_occurrence", row_id, (
                    ("modality_concept_id", modality_id),
                    ("anatomic_site_concept_id", site_id))):
                out.counts["invalid"] += 1
            else:
                good.append(index)
        return good

    def _shared(self, out: _Outcome, key: str, row: StudyRow) -> bool:
        """A study UID under several persons: kept under the first (lowest person id); True
        for the others, which are reported and skipped."""
        if key not in self._studies_done:
            self._studies_done.add(key)
            return False
        out.counts["invalid"] += 1
        self._row_error(out, "image_occurrence", row.ids[0], "this study's UID is also used by "
                        "series of another person; the study is kept under the first person",
                        prop="person_id")
        return True

    # -- imaging procedures (a CDM without image_occurrence) ----------------------------------
    def _imaging_procedures(self, source: OmopSource, since: int | None) -> dict[int, list[str]]:
        """Procedure concepts of the rows to read → their modalities: the imaging procedures,
        and the ids the concept table lacks (their rows are reported)."""
        ids = source.procedure_concept_ids(since)
        self.concepts.load(ids)
        known = [i for i in ids if self.concepts.get(i) is not None]
        under_imaging = source.imaging_descendants(known)
        found: dict[int, list[str]] = {}
        for concept_id in ids:
            concept = self.concepts.get(concept_id)
            if concept is None:
                found[concept_id] = []
            elif concept_id in under_imaging or is_imaging_procedure(
                    concept, self.settings.imaging_concepts):
                found[concept_id] = modalities_of(concept, self.settings.imaging_concepts)
        return found

    def _procedures(self, rows: list[ProcedureRow], imaging: dict[int, list[str]],
                    out: _Outcome) -> None:
        started = time.perf_counter()
        known = self.known.studies
        out.counts["seen"] += len(rows)
        for row in rows:
            key = self.pseudonymiser.hash_identifier(
                "study", f"{self.namespace}:procedure_occurrence/{row.id}")
            digest = self._digest(b"procedure", row.digest)
            if known.get(key, "") == digest:
                out.seen.append(("study", key))
                out.counts["unchanged"] += 1
                self._demographics(out, row)
                continue
            if not row.has_person:
                out.counts["invalid"] += 1
                self._row_error(out, "procedure_occurrence", row.id,
                                f"person_id {row.person_id} is not in the person table",
                                prop="person_id")
                continue
            if self._unknown(out, "procedure_occurrence", row.id,
                             (("procedure_concept_id", row.concept_id),)):
                out.counts["invalid"] += 1
                continue
            concept = self.concepts.get(row.concept_id)
            subject = out.subject(self._demographics(out, row))
            subject.studies.append(StudyRecord(
                key=key, modalities=list(imaging.get(row.concept_id, [])),
                body_parts=list(body_parts_in_name(concept.name)) if concept else [],
                study_month=self._month(row.day), age_at_study=self._age(row, row.day),
                content_hash=digest))
            out.size += 1
        out.timings["map"] += time.perf_counter() - started
