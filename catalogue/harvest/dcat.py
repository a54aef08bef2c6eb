"""DCAT-AP harvester: pages of RDF (Hydra paging) → validated, de-duplicated dataset records.

Per page: parse, canonicalise namespaces, split into one description per dataset, skip records
whose content hash is unchanged, validate new or changed ones (SHACL), upsert by
(organisation, identifier) in one transaction per page. After a complete, non-incremental run,
datasets of this source that were not seen are withdrawn (kept for audit). Guards: a page seen
twice (paging loop), too many pages, too many bytes. A page that cannot be read or parsed is
reported with its URL and the run goes on without deletion sync.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from rdflib import Graph, URIRef
from rdflib.namespace import Namespace

from catalogue.dcat.formats import RdfError, parse_rdf
from catalogue.dcat.profiles import get_profile
from catalogue.dcat.profiles.base import canonical_ntriples
from catalogue.dcat.validation import get_validator
from catalogue.errors import CatalogueError
from catalogue.harvest.base import Harvester, RunContext, SourceUnreadable
from catalogue.harvest.http import FetchError, FetchPolicy, fetch
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.store.audit import enqueue
from catalogue.store.datasets import DatasetRepository, content_hash

log = logging.getLogger(__name__)

HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
ACCEPT = (
    "text/turtle, application/n-triples;q=0.9, application/ld+json;q=0.9, "
    "application/rdf+xml;q=0.8, application/trig;q=0.7"
)


@dataclass(frozen=True)
class HarvestLimits:
    max_pages: int = 10_000
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_page_bytes: int = 50 * 1024 * 1024


@dataclass
class Page:
    url: str
    graph: Graph | None
    not_modified: bool = False
    etag: str | None = None
    last_modified: str | None = None


def _with_modified_since(url: str, since: Any) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "modified_since"]
    query.append(("modified_since", since.isoformat()))
    return urlunsplit(parts._replace(query=urlencode(query)))


class _LazyValidator:
    """Loads the SHACL shapes (≈0.6 s) only when a new or changed record needs them."""

    def validate_dataset(self, description: Graph, node: Any) -> list[Any]:
        issues: list[Any] = get_validator().validate_dataset(description, node)
        return issues


class DcatHarvester(Harvester):
    kind = "dcat"

    def __init__(self, profile: str = "eucaim", limits: HarvestLimits | None = None) -> None:
        self.profile = get_profile(profile)
        self.limits = limits or HarvestLimits()

    # -- reading ------------------------------------------------------------------------------
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
        policy = FetchPolicy(
            max_bytes=self.limits.max_page_bytes,
            allow_private=ctx.allow_private,
            allowed_origins=ctx.allowed_origins,
        )
        cached = state.get(url, {})
        result = fetch(
            url,
            policy,
            etag=cached.get("etag"),
            last_modified=cached.get("last_modified"),
            accept=ACCEPT,
        )
        # keyed by the URL we asked for (state and hydra:next refer to it), not the final one
        page = Page(url, None, result.not_modified, result.etag, result.last_modified)
        return result.content, page

    def pages(self, ctx: RunContext) -> Iterator[tuple[Page, bytes]]:
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
                yield page, b""
                url = page_state.get(url, {}).get("next")
                continue
            started = time.perf_counter()
            try:
                page.graph = parse_rdf(content, content_type=None, filename=url, base=url)
            except RdfError as exc:
                ctx.complete = False
                ctx.error(f"page is not valid RDF: {exc.message}", location=url)
                return
            ctx.timed("parse", time.perf_counter() - started)
            yield page, content
            nxt = self._next(page.graph, url)
            entry = page_state.setdefault(url, {})
            # a page with rejected or failed records is fetched in full next time, so they are
            # reconsidered (fixed rules, another validation mode) instead of skipped as 304
            retry = entry.pop("retry", False)
            entry.update({"etag": None if retry else page.etag,
                          "last_modified": None if retry else page.last_modified, "next": nxt})
            url = nxt

    @staticmethod
    def _next(graph: Graph, url: str) -> str | None:
        for pred in (HYDRA.next, HYDRA.nextPage):
            for obj in graph.objects(None, pred):
                if isinstance(obj, URIRef):
                    return str(obj)
        return None

    # -- the run ------------------------------------------------------------------------------
    def run(self, ctx: RunContext) -> None:
        validator = _LazyValidator()
        page_state: dict[str, Any] = ctx.state.setdefault("pages", {})
        for page, _content in self.pages(ctx):
            if page.not_modified:
                ids = page_state.get(page.url, {}).get("identifiers", [])
                self._mark_seen(ctx, ids)
                ctx.count("seen", len(ids))
                ctx.count("unchanged", len(ids))
                ctx.tick()
                continue
            assert page.graph is not None
            started = time.perf_counter()
            graph = self.profile.canonicalise(page.graph)
            records: list[tuple[Dataset, list[dict[str, Any]], Any, Graph]] = []
            nodes = self.profile.dataset_nodes(graph)
            if not nodes:
                ctx.error(
                    "no dcat:Dataset found on this page", location=page.url, severity="warning"
                )
            described: list[tuple[Any, Graph, str, str]] = []
            for node in nodes:
                ctx.count("seen")
                try:
                    description = self.profile.description(graph, node)
                    text = canonical_ntriples(description)
                    identifier = self.profile._identifier(description, node) or (
                        "urn:sha256:" + hashlib.sha256(text.encode()).hexdigest())
                except Exception as exc:  # one broken record never stops the run
                    log.warning("record %s could not be cut out: %s", node, type(exc).__name__)
                    ctx.count("failed")
                    ctx.error(f"could not read this record: {type(exc).__name__}",
                              record=str(node), location=page.url)
                    continue
                described.append((node, description, text, identifier))
            # records whose description is byte-identical to the stored one are unchanged:
            # no profile parsing, no validation, no write (only "seen in this run")
            unchanged_ids, to_parse = self._unchanged(ctx, described)
            for node, description, _text, identifier in to_parse:
                try:
                    ds, problems = self.profile.parse_with_problems(
                        description, node, ctx.organisation_id
                    )
                except CatalogueError as exc:
                    ctx.count("failed")
                    ctx.error(exc.message, record=identifier, location=page.url)
                    continue
                except Exception as exc:  # one broken record never stops the run
                    log.warning("record %s failed to parse: %s", identifier, type(exc).__name__)
                    ctx.count("failed")
                    ctx.error(
                        f"could not read this record: {type(exc).__name__}",
                        record=identifier,
                        location=page.url,
                    )
                    continue
                issues = [{"severity": "warning", "path": None, "message": p} for p in problems]
                records.append((ds, issues, node, description))
            ctx.timed("extract", time.perf_counter() - started)
            started = time.perf_counter()
            before = ctx.counts["failed"] + ctx.counts["invalid"]
            page_ids = self._apply(ctx, records, validator, page.url) + unchanged_ids
            if ctx.counts["failed"] + ctx.counts["invalid"] > before or \
                    len(records) + len(unchanged_ids) < len(nodes):
                page_state.setdefault(page.url, {})["retry"] = True
            ctx.timed("apply", time.perf_counter() - started)
            page_state.setdefault(page.url, {})["identifiers"] = page_ids
            ctx.tick()

    def _unchanged(self, ctx: RunContext, described: list[tuple[Any, Graph, str, str]]
                   ) -> tuple[list[str], list[tuple[Any, Graph, str, str]]]:
        if not described:
            return [], []
        with ctx.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, identifier, md5(graph) AS graph_md5 FROM datasets "
                "WHERE organisation_id = %s AND identifier = ANY(%s) AND status = 'published'",
                (ctx.organisation_id, [d[3] for d in described]),
            ).fetchall()
            stored = {r["identifier"]: r for r in rows}
            same, rest, seen_ids = [], [], []
            for item in described:
                row = stored.get(item[3])
                digest = hashlib.md5(item[2].encode(), usedforsecurity=False).hexdigest()
                if row is not None and row["graph_md5"] == digest:
                    same.append(item[3])
                    seen_ids.append(row["id"])
                else:
                    rest.append(item)
            if seen_ids and not ctx.dry_run and ctx.run_id:
                conn.execute(
                    "UPDATE datasets SET last_seen_run = %s, source_id = coalesce(source_id, %s) "
                    "WHERE id = ANY(%s)", (ctx.run_id, ctx.source_id, seen_ids))
        ctx.count("unchanged", len(same))
        return same, rest

    def _apply(
        self,
        ctx: RunContext,
        records: list[tuple[Dataset, list[dict[str, Any]], Any, Graph]],
        validator: Any,
        location: str,
    ) -> list[str]:
        identifiers = [ds.identifier for ds, *_ in records]
        with ctx.db.transaction() as conn:
            rows = conn.execute(
                "SELECT id, identifier, content_hash, status, source_id FROM datasets "
                "WHERE organisation_id = %s AND identifier = ANY(%s)",
                (ctx.organisation_id, identifiers),
            ).fetchall()
            existing = {r["identifier"]: r for r in rows}
            repo = DatasetRepository(conn)
            changed_ids: list[str] = []
            for ds, issues, node, description in records:
                ds.source_id = ctx.source_id
                ds.status = DatasetStatus.PUBLISHED
                old = existing.get(ds.identifier)
                if old and old["content_hash"] == content_hash(ds) and old["status"] == "published":
                    ctx.count("unchanged")
                    if not ctx.dry_run and ctx.run_id:
                        conn.execute(
                            "UPDATE datasets SET last_seen_run = %s, source_id = "
                            "coalesce(source_id, %s) WHERE id = %s",
                            (ctx.run_id, ctx.source_id, old["id"]),
                        )
                    continue
                started = time.perf_counter()
                found = validator.validate_dataset(description, node) if ctx.validate else []
                ctx.timed("validate", time.perf_counter() - started)
                violations = [i for i in found if i.severity == "violation"]
                for issue in found:
                    ctx.error(
                        issue.describe(),
                        record=ds.identifier,
                        location=location,
                        prop=issue.path,
                        severity="error" if issue.severity == "violation" else "warning",
                    )
                issues += [
                    {"severity": i.severity, "path": i.path, "message": i.describe()} for i in found
                ]
                if violations:
                    ctx.count("invalid")
                    if ctx.validation_mode == "strict":
                        continue
                ds.validation = issues
                if ctx.dry_run:
                    ctx.count("updated" if old else "created")
                    continue
                try:
                    with conn.transaction():
                        if old:
                            ds.id = str(old["id"])
                            saved = repo.update(ds, reload=False, seen_run=ctx.run_id)
                            ctx.count("updated")
                        else:
                            saved = repo.insert(ds, reload=False, seen_run=ctx.run_id)
                            ctx.count("created")
                        assert saved.id is not None
                        changed_ids.append(saved.id)
                except Exception as exc:
                    ctx.count("failed")
                    ctx.error(
                        f"could not be stored: {type(exc).__name__}",
                        record=ds.identifier,
                        location=location,
                    )
            enqueue(conn, "dataset", changed_ids)
            if ctx.dry_run:
                conn.rollback()
        return identifiers

    def _mark_seen(self, ctx: RunContext, identifiers: list[str]) -> None:
        if ctx.dry_run or not ctx.run_id or not identifiers:
            return
        with ctx.db.transaction() as conn:
            conn.execute(
                "UPDATE datasets SET last_seen_run = %s WHERE organisation_id = %s "
                "AND identifier = ANY(%s)",
                (ctx.run_id, ctx.organisation_id, identifiers),
            )

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
