"""DCAT-AP harvester: pages of RDF (Hydra paging) → validated, de-duplicated dataset records.

Per page: parse, canonicalise namespaces, split into one description per dataset, skip records
whose content hash is unchanged, validate new or changed ones (SHACL), upsert by
(organisation, identifier) in one transaction per page. After a complete, non-incremental run,
datasets of this source that were not seen are withdrawn (kept for audit). Guards: a page seen
twice (paging loop), too many pages, too many bytes. A page that cannot be read or parsed is
reported with its URL and the run goes on without deletion sync.

Deletions are also read when announced: a ``dcat:CatalogRecord`` whose ``adms:status`` is
``changetype/deleted`` (incremental DCAT pages), or an OAI-PMH record whose header says
``status="deleted"``, withdraws the dataset of this organisation with that IRI. Announcements
are applied once the run has read everything it will read, and a dataset that the run also
describes (on any page, before or after) is never withdrawn by them: a description wins.

A source URL that is an OAI-PMH ``ListRecords`` request is read by :mod:`catalogue.harvest.oai`
(one response = one page) instead of Hydra paging; the rest of the pipeline is the same.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rdflib import Graph, URIRef
from rdflib.namespace import RDF, Namespace

from catalogue.dcat.description import Description
from catalogue.dcat.fastcut import PageIndex, can_cut, index_page
from catalogue.dcat.formats import RdfError, detect_format, parse_rdf
from catalogue.dcat.namespaces import ADMS, DCAT, FOAF
from catalogue.dcat.profiles import get_profile
from catalogue.dcat.profiles.base import canonical_ntriples
from catalogue.dcat.validation import get_validator
from catalogue.errors import CatalogueError
from catalogue.harvest import oai, pools
from catalogue.harvest.base import Harvester, RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch, redact_url
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.services.codes import unknown_code_warnings
from catalogue.store.audit import enqueue
from catalogue.store.datasets import DatasetRepository, content_hash

log = logging.getLogger(__name__)

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
ACCEPT = (
    "text/turtle, application/n-triples;q=0.9, application/ld+json;q=0.9, "
    "application/rdf+xml;q=0.8, application/trig;q=0.7"
)
#: ``adms:status`` of a catalogue record whose dataset was withdrawn at the source
DELETED = URIRef("http://purl.org/adms/changetype/deleted")


@dataclass(frozen=True)
class HarvestLimits:
    max_pages: int = 10_000
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_page_bytes: int = 50 * 1024 * 1024


@dataclass
class Page:
    url: str
    graph: Graph | PageIndex | None  # parsed here (small sources); None: a worker parses
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None
    content: bytes = b""
    next: str | None = None
    oai: bool = False  # an OAI-PMH response: no conditional requests, no page state
    deleted: list[str] = field(default_factory=list)  # IRIs announced deleted (OAI headers)
    described: list[str] = field(default_factory=list)  # IRIs of live OAI records
    failures: list[dict[str, Any]] = field(default_factory=list)  # records read before the cut
    expect_datasets: bool = True  # False: a page without datasets is not worth a warning


_UTF8_BOM = b"\xef\xbb\xbf"
_NEXT_LINKS = (str(HYDRA.next), str(HYDRA.nextPage))


def _quick_next(content: bytes, url: str) -> str | None:
    """The page's ``hydra:next`` link, found by Oxigraph's streaming parser (milliseconds),
    so the next page can be fetched while a worker does the full parse of this one."""
    import pyoxigraph

    content = content.removeprefix(_UTF8_BOM)
    fmt = pyoxigraph.RdfFormat.N_TRIPLES if content.lstrip().startswith(b"<") and \
        b"@prefix" not in content[:4096] else pyoxigraph.RdfFormat.TURTLE
    try:
        for triple in pyoxigraph.parse(content, format=fmt, base_iri=url):
            if triple.predicate.value in _NEXT_LINKS and \
                    isinstance(triple.object, pyoxigraph.NamedNode):
                return str(triple.object.value)
    except SyntaxError:
        # what Oxigraph refuses the general parser may read (and the worker will): ask it
        return DcatHarvester._next(read_page(content, url), url)
    return None


def _with_modified_since(url: str, since: Any) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "modified_since"]
    query.append(("modified_since", since.isoformat()))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass
class ParsedRecord:
    dataset: Dataset
    problems: list[dict[str, Any]]     # values the profile could not read
    validation: list[dict[str, Any]]   # SHACL issues (new or changed records only)
    who: str = ""                      # which dataset of the source it is (see Extracted.claims)


def _who(node: Any, digest: str) -> str:
    """The dataset a record describes, as messages name it: its IRI, else (a dataset without an
    IRI) its description's digest, so that only an identical description is the same one."""
    return f"<{node}>" if isinstance(node, URIRef) else f"a dataset without an IRI ({digest})"


def _claim_key(who: str) -> str:
    """What the page state keeps of a claim's dataset: a short digest of its name."""
    return hashlib.md5(who.encode(), usedforsecurity=False).hexdigest()[:16]


@dataclass
class Extracted:
    """What one page yields, computed in this process or in a worker."""

    nodes: int = 0
    unchanged: list[str] = field(default_factory=list)
    records: list[ParsedRecord] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    parse_error: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)  # IRIs of records announced deleted
    described: list[str] = field(default_factory=list)  # IRIs of the datasets on the page
    #: (identifier, which dataset, unchanged?) of every record read, in page order
    claims: list[tuple[str, str, bool]] = field(default_factory=list)


@dataclass
class Announced:
    """What one run learnt about deletions: IRIs announced deleted, and what it described
    (IRIs and identifiers), which a deletion of the same dataset in the same run never beats;
    and which dataset took each identifier first (identifier → (its claim key, page, its name;
    None when read from the state of a page answered 304))."""

    deleted: set[str] = field(default_factory=set)
    described_iris: set[str] = field(default_factory=set)
    described_ids: set[str] = field(default_factory=set)
    claimed: dict[str, tuple[str, str, str | None]] = field(default_factory=dict)


def deleted_topics(page: Graph | PageIndex) -> list[str]:
    """IRIs of the datasets whose catalogue record on ``page`` (canonicalised) says
    ``adms:status <http://purl.org/adms/changetype/deleted>``."""
    topics: set[str] = set()
    if isinstance(page, PageIndex):
        for pairs in page.by_subject.values():
            if (ADMS.status, DELETED) in pairs:
                topics.update(str(o) for p, o in pairs
                              if p == FOAF.primaryTopic and isinstance(o, URIRef))
    else:
        for record in page.subjects(ADMS.status, DELETED):
            topics.update(str(o) for o in page.objects(record, FOAF.primaryTopic)
                          if isinstance(o, URIRef))
    return sorted(topics)


def extract_page(profile: Any, page: Graph | PageIndex, url: str, organisation_id: str,
                 stored: dict[str, str], validate: bool) -> Extracted:
    """Cut a parsed page into records: unchanged ones (description identical to the stored
    one) by identifier, new or changed ones parsed and validated."""
    out = Extracted()
    started = time.perf_counter()
    describe: Callable[[Any], Graph | Description]
    typed: Callable[[Any], bool]
    if isinstance(page, PageIndex):
        nodes = page.dataset_nodes()
        describe = page.description
        out.deleted = deleted_topics(page)

        def typed(node: Any) -> bool:
            return DCAT.Dataset in page.types.get(node, ())
    else:
        graph = profile.canonicalise(page)
        nodes = profile.dataset_nodes(graph)
        out.deleted = deleted_topics(graph)

        def describe(node: Any) -> Graph:
            return profile.description(graph, node)

        def typed(node: Any) -> bool:
            return (node, RDF.type, DCAT.Dataset) in graph

    if out.deleted:
        # a deleted dataset's record may come with a stub of it (``a dcat:Resource``): not a
        # dataset to read, unless the page really describes one
        gone = set(out.deleted)
        nodes = [n for n in nodes if str(n) not in gone or typed(n)]
    out.nodes = len(nodes)
    out.described = [str(n) for n in nodes if isinstance(n, URIRef)]
    validator = _LazyValidator()
    validating = 0.0
    for node in nodes:
        identifier = str(node)
        try:
            description = describe(node)
            text = canonical_ntriples(description)
            identifier = profile._identifier(description, node) or (
                "urn:sha256:" + hashlib.sha256(text.encode()).hexdigest())
            digest = hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()
            who = _who(node, digest)
            if stored.get(identifier) == digest:
                out.unchanged.append(identifier)
                out.claims.append((identifier, who, True))
                continue
            ds, problems = profile.parse_with_problems(description, node, organisation_id,
                                                       text=text)
            ds.content_hash = content_hash(ds)
            began = time.perf_counter()
            found = validator.validate_dataset(description, node) if validate else []
            validating += time.perf_counter() - began
        except CatalogueError as exc:
            out.failures.append({"record": identifier, "message": exc.message})
            continue
        except Exception as exc:  # one broken record never stops the run
            out.failures.append({"record": identifier,
                                 "message": f"could not read this record: {type(exc).__name__}"})
            continue
        out.claims.append((identifier, who, False))
        out.records.append(ParsedRecord(
            ds, [{"severity": "warning", "path": None, "message": p} for p in problems]
            + unknown_code_warnings(ds),
            [{"severity": i.severity, "path": i.path, "message": i.describe()} for i in found],
            who))
    out.timings = {"extract": time.perf_counter() - started - validating,
                   "validate": validating}
    return out


_WORKER: dict[str, Any] = {}


def _init_worker(profile: str, stored: dict[str, str], validate: bool) -> None:
    _WORKER.update(profile=get_profile(profile), stored=stored, validate=validate)


def read_page(content: bytes, url: str) -> Graph | PageIndex:
    """A fetched page, parsed to be cut into records.

    Turtle and N-Triples are indexed by Oxigraph without an rdflib page graph (the fast cut).
    A page Oxigraph refuses (a byte order mark, another encoding, an IRI with a space), and
    every other format, is read by :func:`parse_rdf`, which tries rdflib too and names what is
    wrong: every page is read the same way, in this process or in a worker.
    Raises :class:`RdfError`.
    """
    if can_cut(content, url):
        try:
            return index_page(content, url)
        except (SyntaxError, ValueError):
            pass
    return parse_rdf(content, content_type=None, filename=url, base=url)


def _work(content: bytes, url: str, organisation_id: str) -> Extracted:
    started = time.perf_counter()
    page: Graph | PageIndex
    try:
        page = read_page(content, url)
    except RdfError as exc:
        return Extracted(parse_error=exc.message)
    except (SyntaxError, ValueError) as exc:
        return Extracted(parse_error=str(exc)[:300])
    parsed = time.perf_counter() - started
    out = extract_page(_WORKER["profile"], page, url, organisation_id, _WORKER["stored"],
                       _WORKER["validate"])
    out.timings["parse"] = parsed
    return out


class _LazyValidator:
    """Loads the SHACL shapes (≈0.6 s) only when a new or changed record needs them."""

    def validate_dataset(self, description: Graph | Description, node: Any) -> list[Any]:
        issues: list[Any] = get_validator().validate_dataset(description, node)
        return issues


class DcatHarvester(Harvester):
    kind = "dcat"

    def __init__(self, profile: str = "eucaim", limits: HarvestLimits | None = None,
                 workers: int | None = None) -> None:
        self.profile_name = profile
        self.profile = get_profile(profile)
        self.limits = limits or HarvestLimits()
        # worker processes parse and cut pages while this process fetches and writes
        self.workers = workers if workers is not None else min(2, os.cpu_count() or 1)

    # -- reading ------------------------------------------------------------------------------
    def _policy(self, ctx: RunContext) -> FetchPolicy:
        return FetchPolicy(
            max_bytes=self.limits.max_page_bytes,
            allow_private=ctx.allow_private,
            allowed_origins=ctx.allowed_origins,
        )

    def _read(self, ctx: RunContext, url: str, state: dict[str, Any]) -> tuple[bytes, Page]:
        if url.startswith("file://") or not urlsplit(url).scheme:
            path = Path(url[len("file://") :] if url.startswith("file://") else url)
            try:
                if path.stat().st_size > self.limits.max_page_bytes:
                    raise SourceUnreadable(f"{path} is larger than the page size limit")
                return path.read_bytes(), Page(str(path), None)
            except OSError as exc:
                raise FetchError(
                    f"cannot read {path}: {exc.strerror}", url=str(path), kind="connection"
                ) from None
        cached = state.get(url, {})
        result = fetch(
            url,
            self._policy(ctx),
            etag=cached.get("etag"),
            last_modified=cached.get("last_modified"),
            accept=ACCEPT,
        )
        # keyed by the URL we asked for (state and hydra:next refer to it), not the final one
        page = Page(url, None, result.not_modified, result.etag, result.last_modified)
        return result.content, page

    def pages(self, ctx: RunContext, defer_parsing: bool = False) -> Iterator[Page]:
        start = ctx.url
        if (
            ctx.modified_since is not None
            and not start.startswith("file://")
            and urlsplit(start).scheme
        ):
            start = _with_modified_since(start, ctx.modified_since)
        url: str | None = start
        seen: set[str] = set()
        total = 0
        page_state: dict[str, Any] = ctx.state.setdefault("pages", {})
        first = True
        while url:
            if url in seen:
                ctx.complete = False
                ctx.error(
                    f"paging loop: {url} was already harvested in this run; stopped "
                    "following hydra:next",
                    location=url,
                )
                return
            if len(seen) >= self.limits.max_pages:
                ctx.complete = False
                ctx.error(f"more than {self.limits.max_pages} pages; stopped", location=url)
                return
            seen.add(url)
            if defer_parsing and len(seen) == 3:
                pools.prepare()  # workers parse from this page on: their server starts now
            started = time.perf_counter()
            try:
                content, page = self._read(ctx, url, page_state)
            except FetchError as exc:
                if first:
                    raise SourceUnreadable(exc.message) from None
                ctx.complete = False
                ctx.error(f"page could not be fetched: {exc.message}", location=url)
                return
            first = False
            ctx.timed("fetch", time.perf_counter() - started)
            total += len(content)
            if total > self.limits.max_total_bytes:
                ctx.complete = False
                ctx.error("the source exceeds the total size limit; stopped", location=url)
                return
            if page.not_modified:
                yield page
                url = page_state.get(url, {}).get("next")
                continue
            page.content = content
            nxt: str | None = None
            started = time.perf_counter()
            try:
                # small sources stay in this process; from the third page on, workers parse
                if defer_parsing and len(seen) > 2 and \
                        detect_format(content, None, url) in ("turtle", "nt"):
                    nxt = _quick_next(content, url)  # the full parse happens in a worker
                else:
                    page.graph = read_page(content, url)
                    nxt = self._next(page.graph, url)
            except (RdfError, SyntaxError, ValueError) as exc:
                message = exc.message if isinstance(exc, RdfError) else str(exc)[:300]
                ctx.complete = False
                ctx.error(f"page is not valid RDF: {message}", location=url)
                return
            ctx.timed("parse", time.perf_counter() - started)
            page.next = nxt
            yield page
            url = nxt

    def oai_pages(self, ctx: RunContext) -> Iterator[Page]:
        """The responses of an OAI-PMH ``ListRecords`` source, each a parsed page."""
        for got in oai.list_records(ctx, self._policy(ctx), max_pages=self.limits.max_pages,
                                    max_total_bytes=self.limits.max_total_bytes):
            yield Page(redact_url(got.url), got.graph, oai=True, deleted=got.deleted,
                       described=got.live, failures=got.failures,
                       expect_datasets=bool(got.live))

    @staticmethod
    def _next(graph: Graph | PageIndex, url: str) -> str | None:
        for pred in (HYDRA.next, HYDRA.nextPage):
            for obj in graph.objects(None, pred):
                if isinstance(obj, URIRef):
                    return str(obj)
        return None

    # -- the run ------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> None:
        page_state: dict[str, Any] = ctx.state.setdefault("pages", {})
        stored = self._stored_digests(ctx)
        announced = Announced()
        executor: ProcessPoolExecutor | None = None
        pending: deque[tuple[Page, Future[Extracted] | Extracted]] = deque()
        pages = self.oai_pages(ctx) if oai.is_list_records(ctx.url) else \
            self.pages(ctx, defer_parsing=self.workers > 1)
        try:
            for page in pages:
                if page.not_modified:
                    known = page_state.get(page.url, {})
                    ids = known.get("identifiers", [])
                    announced.described_ids.update(ids)
                    for identifier, key in known.get("claims", {}).items():
                        announced.claimed.setdefault(identifier, (key, page.url, None))
                    self._mark_seen(ctx, ids)
                    ctx.count("seen", len(ids))
                    ctx.count("unchanged", len(ids))
                    ctx.tick()
                    continue
                if page.graph is None and executor is None:
                    executor = pools.pool(self.workers, _init_worker,
                                          (self.profile_name, stored, ctx.validate))
                if page.graph is None:
                    assert executor is not None
                    pending.append((page, executor.submit(
                        _work, page.content, page.url, ctx.organisation_id)))
                else:
                    pending.append((page, extract_page(
                        self.profile, page.graph, page.url, ctx.organisation_id, stored,
                        ctx.validate)))
                while pending and (len(pending) > 2 * self.workers or
                                   not isinstance(pending[0][1], Future) or
                                   pending[0][1].done()):
                    self._finish(ctx, *pending.popleft(), announced)
            while pending:
                self._finish(ctx, *pending.popleft(), announced)
            # only now: a later page may still have described a dataset announced deleted
            self._withdraw_announced(ctx, announced)
        finally:
            if executor is not None:
                executor.shutdown(wait=True, cancel_futures=True)

    def _finish(self, ctx: RunContext, page: Page,
                outcome: Future[Extracted] | Extracted, announced: Announced) -> None:
        page_state: dict[str, Any] = ctx.state.setdefault("pages", {})
        try:
            result = outcome.result() if isinstance(outcome, Future) else outcome
        except Exception as exc:
            ctx.complete = False
            ctx.error(f"page could not be processed: {type(exc).__name__}", location=page.url)
            return
        for stage, seconds in result.timings.items():
            ctx.timed(stage, seconds)
        if result.parse_error:
            ctx.complete = False
            ctx.error(f"page is not valid RDF: {result.parse_error}", location=page.url)
            return
        deleted = result.deleted + page.deleted
        announced.deleted.update(deleted)
        announced.described_iris.update(result.described, page.described)
        if result.nodes == 0 and page.expect_datasets and not deleted and not page.failures:
            ctx.error("no dcat:Dataset found on this page", location=page.url,
                      severity="warning")
        claims, duplicates = self._refuse_duplicates(ctx, result, page.url, announced.claimed)
        failures = page.failures + result.failures
        ctx.count("seen", result.nodes + len(page.failures))
        ctx.count("failed", len(failures))
        for failure in failures:
            ctx.error(failure["message"], record=failure["record"], location=page.url,
                      prop=failure.get("property"))
            if failure["record"]:
                announced.described_ids.add(failure["record"])
        # an OAI record that could not be read keeps its dataset's last good version: seen
        self._mark_seen_iris(ctx, [f["record"] for f in page.failures if f["record"]])
        self._mark_seen(ctx, result.unchanged)
        ctx.count("unchanged", len(result.unchanged))
        started = time.perf_counter()
        before = ctx.counts["failed"] + ctx.counts["invalid"]
        page_ids = self._apply(ctx, result.records, page.url) + result.unchanged
        announced.described_ids.update(page_ids)
        ctx.timed("apply", time.perf_counter() - started)
        if page.oai:  # OAI responses are always fetched: no validators, no page state
            ctx.tick()
            return
        # a page with rejected or failed records is fetched in full next time, so they are
        # reconsidered (fixed rules, another validation mode) instead of skipped as 304
        retry = duplicates > 0 or ctx.counts["failed"] + ctx.counts["invalid"] > before
        page_state[page.url] = {
            "etag": None if retry else page.etag,
            "last_modified": None if retry else page.last_modified,
            "next": page.next, "identifiers": page_ids, "claims": claims}
        ctx.tick()

    @staticmethod
    def _refuse_duplicates(ctx: RunContext, result: Extracted, location: str,
                           claimed: dict[str, tuple[str, str, str | None]],
                           ) -> tuple[dict[str, str], int]:
        """Drop the records whose identifier a different dataset of this run took first.

        Identifiers are unique within an organisation, so two datasets of one source with the
        same ``dct:identifier`` would overwrite each other on every harvest (or one would fail
        to store). The first one read keeps it; each other one is a failed record whose error
        names both. The same dataset read twice (listed on two pages) is not a duplicate.
        Returns the page's claims that stand, identifier → claim key (kept in the page state,
        so that a page answered 304 next time still holds its identifiers), and how many
        records were refused.
        """
        refused: set[tuple[str, str]] = set()
        standing: dict[str, str] = {}
        for identifier, who, _unchanged in result.claims:
            key = _claim_key(who)
            first_key, first_page, first_name = claimed.setdefault(
                identifier, (key, location, who))
            if first_key == key:
                standing[identifier] = key
                continue
            refused.add((identifier, who))
            where = "on this page" if first_page == location else f"on {first_page}"
            name = first_name or DcatHarvester._stored_name(ctx, identifier)
            result.failures.append({
                "record": identifier, "property": "dct:identifier",
                "message": f"dct:identifier {identifier!r} of {who} is already the identifier of "
                           f"{name} ({where}); identifiers must be unique within a source, "
                           "so this dataset was not stored"})
        if refused:
            result.records = [r for r in result.records
                              if (r.dataset.identifier, r.who) not in refused]
            unchanged_who = {i: w for i, w, unchanged in result.claims if unchanged}
            result.unchanged = [i for i in result.unchanged
                                if (i, unchanged_who[i]) not in refused]
        return standing, len(refused)

    @staticmethod
    def _stored_name(ctx: RunContext, identifier: str) -> str:
        """How messages name the stored dataset with this identifier (which a page answered
        304 holds)."""
        with ctx.db.transaction() as conn:
            row = conn.execute(
                "SELECT iri FROM datasets WHERE organisation_id = %s AND identifier = %s",
                (ctx.organisation_id, identifier)).fetchone()
        if row is None:
            return "another dataset of this source"
        return f"<{row['iri']}>" if row["iri"] else "a dataset without an IRI"

    @staticmethod
    def _write_all(ctx: RunContext, conn: Any, repo: DatasetRepository,
                   writes: list[tuple[Dataset, Any]], location: str) -> list[str]:
        """Store a page's new and changed records: in one savepoint, or, if any record fails,
        one savepoint per record so that only the failing ones are lost."""

        def write(ds: Dataset, old: Any) -> str:
            if old:
                ds.id = str(old["id"])
                repo.update(ds, reload=False, seen_run=ctx.run_id)
            else:
                repo.insert(ds, reload=False, seen_run=ctx.run_id)
            assert ds.id is not None
            return ds.id

        try:
            with conn.transaction():
                for ds, old in writes:
                    if old:
                        ds.id = str(old["id"])
                repo.write_many([ds for ds, old in writes if not old],
                                [ds for ds, old in writes if old], seen_run=ctx.run_id)
            for _ds, old in writes:
                ctx.count("updated" if old else "created")
            return [ds.id for ds, _old in writes if ds.id is not None]
        except Exception:  # noqa: S110 - retried record by record below
            pass
        ids = []
        for ds, old in writes:
            try:
                with conn.transaction():
                    ids.append(write(ds, old))
                ctx.count("updated" if old else "created")
            except Exception as exc:
                ctx.count("failed")
                ctx.error(f"could not be stored: {type(exc).__name__}", record=ds.identifier,
                          location=location)
        return ids

    def _stored_digests(self, ctx: RunContext) -> dict[str, str]:
        """identifier → md5 of the stored description, for the organisation's published
        datasets that this source may write (its own, and those of no source): a record whose
        description is byte-identical is unchanged (not parsed)."""
        with ctx.db.transaction() as conn:
            rows = conn.execute(
                "SELECT identifier, md5(graph) AS digest FROM datasets WHERE organisation_id = %s "
                "AND status = 'published' AND graph IS NOT NULL AND (source_id IS NULL OR "
                "source_id = %s)", (ctx.organisation_id, ctx.source_id)
            ).fetchall()
        return {r["identifier"]: r["digest"] for r in rows}

    def _apply(self, ctx: RunContext, records: list[ParsedRecord], location: str) -> list[str]:
        identifiers = [r.dataset.identifier for r in records]
        with ctx.db.transaction() as conn:
            rows = conn.execute(
                "SELECT d.id, d.identifier, d.content_hash, d.status, d.source_id, "
                "s.name AS source_name, s.url AS source_url FROM datasets d "
                "LEFT JOIN harvest_sources s ON s.id = d.source_id "
                "WHERE d.organisation_id = %s AND d.identifier = ANY(%s)",
                (ctx.organisation_id, identifiers),
            ).fetchall()
            existing = {r["identifier"]: r for r in rows}
            repo = DatasetRepository(conn)
            writes: list[tuple[Dataset, Any]] = []
            for parsed in records:
                ds = parsed.dataset
                ds.source_id = ctx.source_id
                ds.status = DatasetStatus.PUBLISHED
                old = existing.get(ds.identifier)
                if old and self._kept_by_another_source(ctx, old, location):
                    continue
                if not ds.content_hash:  # usually computed by the worker that read the record
                    ds.content_hash = content_hash(ds)
                if old and old["content_hash"] == ds.content_hash and old["status"] == "published":
                    ctx.count("unchanged")
                    if not ctx.dry_run and ctx.run_id:
                        conn.execute(
                            "UPDATE datasets SET last_seen_run = %s, source_id = "
                            "coalesce(source_id, %s) WHERE id = %s",
                            (ctx.run_id, ctx.source_id, old["id"]),
                        )
                    continue
                for issue in parsed.validation:
                    ctx.error(issue["message"], record=ds.identifier, location=location,
                              prop=issue["path"],
                              severity="error" if issue["severity"] == "violation"
                              else "warning")
                if any(i["severity"] == "violation" for i in parsed.validation):
                    ctx.count("invalid")
                    if ctx.validation_mode == "strict":
                        continue
                ds.validation = parsed.problems + parsed.validation
                if ctx.dry_run:
                    ctx.count("updated" if old else "created")
                    continue
                writes.append((ds, old))
            changed_ids = self._write_all(ctx, conn, repo, writes, location)
            enqueue(conn, "dataset", changed_ids)
            if ctx.dry_run:
                conn.rollback()
        return identifiers

    @staticmethod
    def _kept_by_another_source(ctx: RunContext, old: Any, location: str) -> bool:
        """Whether the stored dataset with this record's identifier belongs to another source
        of the organisation (then the record is a failed one, and says which source).

        A dataset is kept by one source: two sources writing one identifier would overwrite
        each other, and either one's deletion sync would withdraw what the other publishes.
        A dataset of no source (published by a provider, or its source deleted) or withdrawn
        by its source may be taken over.
        """
        owner = old["source_id"]
        if owner is None or str(owner) == (ctx.source_id or "") or old["status"] == "withdrawn":
            return False
        ctx.count("failed")
        ctx.error(
            f"dct:identifier {old['identifier']!r} is the identifier of a dataset of another "
            f"harvest source of this organisation ({old['source_name']!r}, "
            f"{redact_url(old['source_url'])}, id {owner}); a dataset is kept by one source, "
            "so this record was not stored: remove it from one of the two sources, or delete "
            "the other source", record=old["identifier"], location=location,
            prop="dct:identifier")
        return True

    def _mark_seen(self, ctx: RunContext, identifiers: list[str]) -> None:
        if ctx.dry_run or not ctx.run_id or not identifiers:
            return
        with ctx.db.transaction() as conn:
            conn.execute(
                "UPDATE datasets SET last_seen_run = %s WHERE organisation_id = %s "
                "AND identifier = ANY(%s)",
                (ctx.run_id, ctx.organisation_id, identifiers),
            )

    def _mark_seen_iris(self, ctx: RunContext, iris: list[str]) -> None:
        if ctx.dry_run or not ctx.run_id or not iris:
            return
        with ctx.db.transaction() as conn:
            conn.execute(
                "UPDATE datasets SET last_seen_run = %s WHERE organisation_id = %s "
                "AND (iri = ANY(%s) OR (iri IS NULL AND identifier = ANY(%s)))",
                (ctx.run_id, ctx.organisation_id, iris, iris),
            )

    def _withdraw_announced(self, ctx: RunContext, announced: Announced) -> int:
        """Withdraw this organisation's datasets announced deleted by the source (matched by
        IRI, else by identifier when the dataset has no IRI) that the run did not describe, and
        that no other source of the organisation keeps."""
        iris = sorted(announced.deleted - announced.described_iris)
        if not iris:
            return 0
        where = ("organisation_id = %s AND status <> 'withdrawn' AND (iri = ANY(%s) OR "
                 "(iri IS NULL AND identifier = ANY(%s))) AND NOT (identifier = ANY(%s))")
        params: list[Any] = [ctx.organisation_id, iris, iris, sorted(announced.described_ids)]
        if ctx.source_id:  # not what another source of the organisation keeps
            where += " AND (source_id IS NULL OR source_id = %s)"
            params.append(ctx.source_id)
        if ctx.run_id:
            where += " AND last_seen_run IS DISTINCT FROM %s"
            params.append(ctx.run_id)
        with ctx.db.transaction() as conn:
            if ctx.dry_run:
                row = conn.execute(f"SELECT count(*) AS n FROM datasets WHERE {where}",
                                   params).fetchone()
                ctx.count("withdrawn", row["n"] if row else 0)
                return row["n"] if row else 0
            rows = conn.execute(
                "UPDATE datasets SET status = 'withdrawn', withdrawn_at = now(), "
                f"updated_at = now(), version = version + 1 WHERE {where} RETURNING id",
                params,
            ).fetchall()
            ids = [str(r["id"]) for r in rows]
            enqueue(conn, "dataset", ids)
        ctx.count("withdrawn", len(ids))
        return len(ids)

    def sync_deletions(self, ctx: RunContext) -> int:
        """Withdraw this source's datasets that the (complete) run did not see."""
        if (
            ctx.dry_run
            or not ctx.complete
            or ctx.modified_since is not None
            or not ctx.source_id
            or not ctx.run_id
        ):
            return 0
        with ctx.db.transaction() as conn:
            rows = conn.execute(
                "UPDATE datasets SET status = 'withdrawn', withdrawn_at = now(), "
                "updated_at = now(), version = version + 1 WHERE source_id = %s "
                "AND status <> 'withdrawn' AND last_seen_run IS DISTINCT FROM %s RETURNING id",
                (ctx.source_id, ctx.run_id),
            ).fetchall()
            ids = [str(r["id"]) for r in rows]
            enqueue(conn, "dataset", ids)
        ctx.count("withdrawn", len(ids))
        return len(ids)
