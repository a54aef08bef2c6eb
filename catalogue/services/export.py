"""The catalogue as DCAT-AP for other data spaces: keyset pages with Hydra links, incremental
listings with deletions announced, single datasets and catalogue records.

Only published datasets are described. A dataset that was published once and is not any more
(withdrawn, or back to draft) appears in incremental listings as a ``dcat:CatalogRecord`` with
``adms:status`` ``changetype/deleted`` and nothing else. Descriptions are the provider's own
graph with the record-derived aggregates (already privacy-protected) in place of the declared
values (:meth:`Dataset.with_aggregates`); datasets without an IRI of their own get
``{base}/dcat/datasets/{id}``, which this service dereferences.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit, urlunsplit

from rdflib import BNode, Graph, URIRef

from catalogue.caching import LRU, CachedFile, FileCache, Joined
from catalogue.dcat import export as rdf
from catalogue.dcat.namespaces import EUCAIM
from catalogue.dcat.profiles import get_profile
from catalogue.errors import CatalogueError, NotFound, ValidationError
from catalogue.model.dataset import Dataset
from catalogue.ontology import get_vocabulary
from catalogue.store.datasets import DatasetRepository
from catalogue.store.db import Database, is_uuid
from catalogue.store.exports import ExportRepository, PageRow, Selection, micros, unpack

log = logging.getLogger(__name__)

EUCAIM_NS = str(EUCAIM)
#: bump when rendering (or the stored encoding) changes, so cached fragments are made again
RENDER_VERSION = "3"
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 100


class Gone(CatalogueError):
    status = 410
    code = "gone"

    def default_message(self) -> str:
        return "withdrawn"


@dataclass
class Page:
    """One page of an export: its validators and its body (made when asked for: a 304 never
    reads the fragments), partly from stored runs when the page cache had them."""

    fmt: str
    total: int
    ids: list[str]
    next_cursor: str | None
    last_cursor: str | None
    etag: str
    last_modified: datetime | None
    body: Callable[[], bytes | Joined]
    cached: list[CachedFile] = field(default_factory=list)  # stored runs ``body`` sends (open)

    def discard(self) -> None:
        """Close the stored runs when they are not sent (a 304)."""
        for stored in self.cached:
            stored.close()


def parse_instant(raw: str | None, name: str) -> datetime | None:
    """An ISO 8601 date or date-time (UTC when no offset is given)."""
    if raw is None or raw == "":
        return None
    text = raw.strip().replace(" ", "+")  # a '+' offset decoded from an unescaped query
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"{name}: {raw!r} is not an ISO 8601 date or date-time "
            "(e.g. 2026-11-28 or 2026-11-28T10:00:00Z)") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _public_source(url: str | None) -> str | None:
    """A harvest source URL fit for publication: http(s), no credentials, query or fragment."""
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class _Loaded(NamedTuple):
    """What rendering a page's unstored fragments needs, read with its listing."""

    full: dict[str, dict[str, Any]]   # dataset id -> full row
    datasets: dict[str, Dataset]      # dataset id -> dataset (published ones)


class ExportService:
    def __init__(self, db: Database, base_url: str, catalog: rdf.CatalogFacts | None = None,
                 profile: str = "eucaim", pages: FileCache | None = None) -> None:
        self.db = db
        self.base = base_url.rstrip("/")
        self.catalog_iri = f"{self.base}/dcat/catalog"
        self.catalog = catalog or rdf.CatalogFacts(
            self.catalog_iri, "Cancer Imaging Catalogue", "Cancer imaging datasets.",
            "Cancer Imaging Catalogue operator", self.base + "/")
        self.profile = get_profile(profile)
        #: whole page bodies by key (None: every page is assembled from its fragments)
        self.pages = pages
        # what a page's descriptions depend on besides the rows they describe
        self._facts = hashlib.sha256(repr(self.catalog).encode()).hexdigest()[:16]
        # page openings by ETag and links (a few KB each)
        self._openings: LRU[str, bytes] = LRU(512)
        # (selection, page size, last change) -> (when, total, start of the last page): a
        # harvester walks many pages of one listing; counting it and finding its last page
        # once per listing state, not on every page, is most of a page's own cost. Entries
        # live SHAPE_TTL seconds at most: `last_change` is stamped at transaction start, so a
        # long write transaction can commit under an unchanged maximum, and the total it
        # changes is then at most that stale (the page's own rows are always read fresh).
        self._shapes: dict[tuple[str, int, Any], tuple[float, int, str | None]] = {}
        self._shapes_lock = threading.Lock()

    SHAPE_TTL = 5.0
    _SHAPES_MAX = 256

    def _shape(self, repo: ExportRepository, selection: Selection, size: int,
               changed: Any) -> tuple[int, str | None]:
        """(total, start of the last page) of ``selection`` in pages of ``size``."""
        key = (str(selection), size, changed)
        now = time.monotonic()
        with self._shapes_lock:
            hit = self._shapes.get(key)
        if hit is not None and now - hit[0] < self.SHAPE_TTL:
            return hit[1], hit[2]
        total = repo.count(selection)
        last = repo.start_of_last_page(selection, size, total)
        with self._shapes_lock:
            if len(self._shapes) >= self._SHAPES_MAX:
                self._shapes.clear()
            self._shapes[key] = (now, total, last)
        return total, last

    # -- IRIs ---------------------------------------------------------------------------------
    def dataset_iri(self, row: dict[str, Any]) -> str:
        return self._iri(row.get("iri"), row["id"])

    def _iri(self, iri: str | None, dataset_id: Any) -> str:
        """The dataset's own IRI, else ours (which this service dereferences)."""
        return str(iri) if iri else f"{self.base}/dcat/datasets/{dataset_id}"

    def record_iri(self, dataset_id: Any) -> str:
        return f"{self.base}/dcat/records/{dataset_id}"

    # -- rendering ------------------------------------------------------------------------------
    def render_key(self, row: dict[str, Any]) -> str:
        """What a stored fragment was rendered from (a page compares it with each listed
        row's version and change time, :meth:`_with_fragments`)."""
        prefix, suffix = self._key()
        return f"{prefix}{row['version']}|{micros(row['updated_at'])}{suffix}"

    def _key(self) -> tuple[str, str]:
        """The render key around ``{version}|{changed}``."""
        return f"{RENDER_VERSION}|", f"|{self.base}"

    def _record(self, row: dict[str, Any]) -> rdf.RecordFacts:
        deleted = row["status"] != "published"
        source = _public_source(row.get("source_url")) if row.get("source_kind") == "dcat" \
            else None
        return rdf.RecordFacts(
            record=self.record_iri(row["id"]), dataset=self.dataset_iri(row),
            issued=row["published_at"] or row["created_at"], modified=row["updated_at"],
            deleted=deleted, created=row["version"] == 1,
            source_url=None if deleted else source,
            harvested_at=row["updated_at"] if source else None)

    def dataset_graph(self, ds: Dataset, iri: str) -> Graph:
        """``ds`` as its DCAT-AP graph, aggregates applied, rooted at ``iri``."""
        graph = self.profile.serialise(replace(_published_terms(ds), iri=ds.iri or iri),
                                       self.base + "/", prefixes=False)
        root = self.profile.root(graph, ds)
        if isinstance(root, BNode):  # a description whose dataset had no IRI gets ours
            target = URIRef(iri)
            for p, o in list(graph.predicate_objects(root)):
                graph.remove((root, p, o))
                graph.add((target, p, o))
            for s, p in list(graph.subject_predicates(root)):
                graph.remove((s, p, root))
                graph.add((s, p, target))
        return graph

    def _triples(self, row: dict[str, Any], ds: Dataset | None) -> list[Any]:
        scope = str(row["id"]).replace("-", "")[:12]
        graph = rdf.record_graph(self._record(row))
        if ds is not None:
            description = self.dataset_graph(ds, self.dataset_iri(row))
            for triple in graph:
                description.add(triple)
            graph = description
        return rdf.ox_triples(graph, scope)

    def fragments(self, conn: Any, rows: list[dict[str, Any]], fmt: str) -> list[bytes]:
        """The fragment of each row: stored when its key matches, else rendered. A dataset
        rendered for one format is rendered (and stored) in every format at once: building its
        graph is the expensive part, serialising it is cheap."""
        out: list[bytes | None] = []
        missing: list[int] = []
        for i, row in enumerate(rows):
            if row["status"] != "published":
                out.append(rdf.fragment(self._triples(row, None), fmt))
                continue
            stored = unpack(row.get("cached_body")) \
                if row.get("cached_key") == self.render_key(row) else None
            out.append(stored)
            if stored is None:
                missing.append(i)
        if missing:
            self._render(conn, rows, fmt, missing, out)
        return [b or b"" for b in out]

    def _load(self, conn: Any, ids: list[str]) -> _Loaded:
        """What rendering these datasets needs: their full rows, and the datasets of those
        that are published (the others are records of withdrawn datasets)."""
        full = {str(r["id"]): r for r in ExportRepository(conn).rows(ids)} if ids else {}
        published = [i for i, r in full.items() if r["status"] == "published"]
        datasets = {str(d.id): d for d in DatasetRepository(conn).get_many(published)} \
            if published else {}
        return _Loaded(full, datasets)

    def _page_fragments(self, rows: list[PageRow], fmt: str, loaded: _Loaded) -> list[bytes]:
        """The fragments of a page's rows: stored ones unpacked; the others (not stored, stale,
        or records of withdrawn datasets) rendered from what was ``loaded`` with the listing,
        in its snapshot. A stored one found unreadable now is read again (a rare repair)."""
        out: list[bytes | None] = [unpack(r.body) if r.status == "published" else None
                                   for r in rows]
        redo = [i for i, body in enumerate(out) if body is None]
        if not redo:
            return [b or b"" for b in out]
        unread = [rows[i].id for i in redo if rows[i].id not in loaded.full]
        if unread:
            with self.db.transaction() as conn:
                more = self._load(conn, unread)
            loaded = _Loaded({**loaded.full, **more.full}, {**loaded.datasets, **more.datasets})
        full = [loaded.full.get(rows[i].id) for i in redo]
        fresh = self._render_loaded([r for r in full if r is not None], loaded.datasets, fmt,
                                    out, [i for i, r in zip(redo, full, strict=True) if r])
        if fresh:
            with self.db.transaction() as conn:
                ExportRepository(conn).save_fragments(fresh)
        return [b or b"" for b in out]

    #: a page's runs end after about one dataset in RUN (see :meth:`run_ends`)
    RUN = 64

    def run_ends(self, dataset_id: str) -> bool:
        """Whether a run of a page ends after this dataset: decided by the id alone (its
        last hex digits, random in a UUID), so a run keeps its datasets wherever the page
        boundaries fall."""
        return int(dataset_id[-4:], 16) % self.RUN == 0

    def _runs(self, rows: list[PageRow]) -> list[list[PageRow]]:
        runs: list[list[PageRow]] = []
        current: list[PageRow] = []
        for row in rows:
            current.append(row)
            if self.run_ends(row.id):
                runs.append(current)
                current = []
        if current:
            runs.append(current)
        return runs

    def _with_fragments(self, repo: ExportRepository, rows: list[PageRow], fmt: str,
                        span: bool) -> list[PageRow]:
        """``rows`` with the fragments stored for them under their current render key."""
        stored = repo.fragments(fmt, [r.id for r in rows if r.status == "published"], span)
        prefix, suffix = self._key()
        out = []
        for r in rows:
            hit = stored.get(r.id)
            if hit is not None and hit[0] == f"{prefix}{r.version}|{r.changed}{suffix}":
                r = r._replace(body=hit[1])
            out.append(r)
        return out

    def _render(self, conn: Any, rows: list[dict[str, Any]], fmt: str, missing: list[int],
                out: list[bytes | None]) -> None:
        """Render the ``missing`` rows in every format, store them, fill ``out`` in ``fmt``."""
        datasets = {str(d.id): d for d in DatasetRepository(conn).get_many(
            [str(rows[i]["id"]) for i in missing])}
        ExportRepository(conn).save_fragments(self._render_loaded(
            [rows[i] for i in missing], datasets, fmt, out, missing))

    def _render_loaded(self, rows: list[dict[str, Any]], datasets: dict[str, Dataset],
                       fmt: str, out: list[bytes | None], places: list[int]
                       ) -> list[tuple[str, str, str, bytes]]:
        """Each row's fragment in ``fmt`` into ``out`` at its place; a published dataset is
        rendered in every format at once (building its graph is the expensive part) and the
        fragments to store are returned. A row whose dataset is gone gets an empty fragment."""
        fresh = []
        for row, place in zip(rows, places, strict=True):
            if row["status"] != "published":  # the record of a withdrawn dataset
                out[place] = rdf.fragment(self._triples(row, None), fmt)
                continue
            ds = datasets.get(str(row["id"]))
            if ds is None:  # gone since the page was read
                out[place] = b""
                continue
            triples = self._triples(row, ds)
            key = self.render_key(row)
            for name in rdf.EXPORT_FORMATS:
                body = rdf.fragment(triples, name)
                fresh.append((str(row["id"]), name, key, body))
                if name == fmt:
                    out[place] = body
        return fresh

    # -- pages ----------------------------------------------------------------------------------
    def page(self, fmt: str, selection: Selection, cursor: str | None, size: int,
             url: Callable[[str | None], str]) -> Page:
        """One keyset page of ``selection`` after ``cursor`` (a dataset id). ``url(cursor)``
        makes the URL of the page starting after ``cursor`` (None: the first page).

        The listing is read without fragments: it is all the ETag needs. A page is its
        opening (the catalogue's statements: totals, links, last change; made per request,
        they change with any write), its part of the *runs* it overlaps, and the format's
        closing. A run is the listing statements and descriptions of consecutive datasets,
        each dataset's piece after the other; it ends after a dataset :meth:`run_ends` of,
        not at a position on a page. A run stored in the page cache under its key (the format
        and its rows' ids, versions, change times, statuses and IRIs) is sent from there, the
        edge ones as a byte range (their pieces' offsets are stored with them); only runs that
        are not stored read their fragments, in the same snapshot, and are stored as they are
        sent. A dataset added or withdrawn shifts every later page, and any page size cuts
        runs differently: the stored runs serve them all; only the run a change is in is
        new."""
        if cursor is not None and not is_uuid(cursor):
            raise ValidationError("cursor: not one this catalogue gave out")
        size = max(1, min(size, MAX_PAGE_SIZE))
        with self.db.transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            repo = ExportRepository(conn)
            changed = repo.last_change()
            total, last = self._shape(repo, selection, size, changed)
            # one more: is there a next?
            rows = repo.listing(selection, cursor, size + 1)
            more = len(rows) > size
            rows = rows[:size]
            ids = [r.id for r in rows]
            next_cursor = ids[-1] if more else None
            # the whole runs the page overlaps: those before it in the run it starts in, and
            # those after it in the run it ends in
            before = self._run_before(repo, selection, cursor) if rows else []
            after = self._run_after(repo, selection, ids[-1]) if more else []
            runs = self._runs(before + rows + after)
            keys = [f"{fmt}|{self.base}|{RENDER_VERSION}|{self._facts}|{self._digest(run)}"
                    for run in runs]
            etag = '"' + hashlib.sha256(
                f"{fmt}|{selection}|{cursor}|{size}|{total}|{last}|{self.base}|"
                f"{RENDER_VERSION}|{changed}|{self._digest(rows)}".encode()).hexdigest()[:32] + '"'
            cached: list[CachedFile | None] = [
                self.pages.open(key) if self.pages is not None else None for key in keys]
            # where each stored run's pieces start (and it ends), read once
            stored_offsets: list[list[int] | None] = [None] * len(runs)
            for n, (hit, run) in enumerate(zip(cached, runs, strict=True)):
                if hit is not None:
                    stored_offsets[n] = self._offsets(hit, len(run))
                    if stored_offsets[n] is None:
                        hit.close()  # stored without its pieces' offsets: assembled again
                        cached[n] = None
            missing = [r for run, hit in zip(runs, cached, strict=True) if hit is None
                       for r in run]
            if missing:
                # a complete listing holds nearly every dataset between two ids: a range of
                # the fragments' key is read faster than each id, when most are wanted
                span = selection.since is None and selection.organisation is None \
                    and 2 * len(missing) > len(rows)
                missing = self._with_fragments(repo, missing, fmt, span)
            # what the body cannot take from stored fragments is read now, in the listing's
            # snapshot: a dataset withdrawn or changed before the body is made is still
            # described as listed (made later, from a second read, it was not)
            loaded = self._load(conn, [r.id for r in missing
                                       if r.status != "published" or r.body is None])
        skip, keep = len(before), len(rows)  # the page's datasets among the runs' rows

        def body() -> bytes | Joined:
            try:
                return assemble()
            except BaseException:
                for hit in cached:
                    if hit is not None:
                        hit.close()
                raise

        def assemble() -> bytes | Joined:
            # the catalogue's own statements (totals, links, last change) open the page; they
            # change with any write to the catalogue. The runs change only with their own
            # datasets, and are what is stored.
            segments: list[bytes | CachedFile] = [self._opening(
                fmt, changed, total, size, url, cursor, next_cursor, last,
                f"{etag}|{url(cursor)}|{url(None)}")]
            fragments = iter(self._page_fragments(missing, fmt, loaded)) if missing \
                else iter(())
            start = 0  # where the current run starts among the runs' rows
            for run, key, hit, known in zip(runs, keys, cached, stored_offsets, strict=True):
                whole: bytes | CachedFile
                if hit is not None and known is not None:
                    whole, offsets = hit, known
                else:
                    pieces = [b"".join(rdf.continued(fmt, [rdf.listed(
                        fmt, self.catalog_iri,
                        self._iri(r.iri, r.id) if r.status == "published" else None,
                        self.record_iri(r.id)), next(fragments)])) for r in run]
                    offsets = [0]
                    for piece in pieces:
                        offsets.append(offsets[-1] + len(piece))
                    # stored, a run is written once and sent from its file
                    stored = self.pages.store(key, pieces, _pack_offsets(offsets)) \
                        if self.pages is not None else None
                    whole = stored if stored is not None else b"".join(pieces)
                # the part of the run on this page
                low = offsets[max(0, skip - start)]
                high = offsets[min(len(run), skip + keep - start)]
                start += len(run)
                if low == 0 and high == offsets[-1]:
                    segments.append(whole)
                elif isinstance(whole, bytes):
                    segments.append(whole[low:high])
                else:
                    segments.append(whole.slice(low, high))
            segments.append(rdf.closing(fmt))
            if any(isinstance(s, CachedFile) for s in segments):
                return Joined(segments)
            # one buffer with its length, which the server sends as it is (no chunked
            # framing, which copies the page twice more)
            return b"".join(cast(list[bytes], segments))

        return Page(fmt, total, ids, next_cursor, last, etag, changed, body,
                    [hit for hit in cached if hit is not None])

    #: rows read beyond a page's edges to find the ends of the runs there: first a few (a
    #: run is 64 long on average, and the page's edge cuts it somewhere), then up to the
    #: limit (a run is longer than that about once in 3,000 at RUN 64; then the page's edge
    #: runs are keyed by what was read, which is still right, only not shared with the next
    #: page)
    RUN_PEEK = 96
    RUN_LIMIT = 512

    def _run_before(self, repo: ExportRepository, selection: Selection,
                    cursor: str | None) -> list[PageRow]:
        """The rows before the page (at or before ``cursor``) in the run it starts in."""
        if cursor is None:
            return []
        return self._to_run_end(
            lambda limit: repo.listing_back(selection, cursor, limit), False)[::-1]

    def _run_after(self, repo: ExportRepository, selection: Selection,
                   last: str) -> list[PageRow]:
        """The rows after the page (after its ``last`` id) in the run it ends in."""
        if self.run_ends(last):
            return []
        return self._to_run_end(lambda limit: repo.listing(selection, last, limit), True)

    def _to_run_end(self, read: Callable[[int], list[PageRow]],
                    with_end: bool) -> list[PageRow]:
        """The rows ``read(limit)`` gives (nearest the page first) up to the first run end
        (the end row itself ``with_end``): a few first, then up to the limit."""
        out: list[PageRow] = []
        for limit in (self.RUN_PEEK, self.RUN_LIMIT):
            rows = read(limit)
            out = []
            for row in rows:
                if self.run_ends(row.id):
                    return [*out, row] if with_end else out
                out.append(row)
            if len(rows) < limit:  # the listing's start or end
                break
        return out

    @staticmethod
    def _digest(rows: list[PageRow]) -> str:
        return hashlib.sha256("".join(
            [f"|{r.id}:{r.version}:{r.changed}:{r.status}:{r.iri}" for r in rows]).encode()
        ).hexdigest()

    @staticmethod
    def _offsets(stored: CachedFile, count: int) -> list[int] | None:
        """Where each of the ``count`` datasets' pieces starts in a stored run, and its end;
        None when what was stored with it does not say so (a miss)."""
        if len(stored.meta) != 8 * (count + 1):
            return None
        offsets = list(struct.unpack(f"<{count + 1}Q", stored.meta))
        return offsets if offsets[0] == 0 and offsets[-1] == stored.size else None

    def _opening(self, fmt: str, changed: Any, total: int, size: int,
                 url: Callable[[str | None], str], cursor: str | None,
                 next_cursor: str | None, last: str | None, memo: str) -> bytes:
        """A page's start: the format's head and the catalogue's own statements with the
        Hydra view (remembered by ``memo``: the ETag and the links it is made from)."""
        known = self._openings.get(memo)
        if known is not None:
            return known
        head = rdf.catalog_graph(self.catalog, (), (), changed)
        links = rdf.PageLinks(
            collection=self.catalog_iri, page=url(cursor), total=total, first=url(None),
            next=url(next_cursor) if next_cursor else None,
            last=url(last) if total > size else url(None))
        for triple in rdf.hydra_graph(links):
            head.add(triple)
        made = rdf.opening(fmt, rdf.render(head, fmt, "catalog"))
        self._openings.put(memo, made)
        return made

    def dump(self, fmt: str, selection: Selection, size: int = 500) -> Iterator[bytes]:
        """The whole selection as one document, one keyset page in memory at a time."""
        return rdf.join(fmt, self._dump_parts(fmt, selection, size))

    def _dump_parts(self, fmt: str, selection: Selection, size: int) -> Iterator[bytes]:
        with self.db.transaction() as conn:
            head = rdf.catalog_graph(self.catalog, (), (), ExportRepository(conn).last_change())
        yield rdf.render(head, fmt, "catalog")
        cursor: str | None = None
        while True:
            with self.db.transaction() as conn:
                rows = ExportRepository(conn).page(selection, cursor, size, fmt)
                fragments = self.fragments(conn, rows, fmt)
            yield rdf.links(self.catalog_iri, [self.dataset_iri(r) for r in rows
                                               if r["status"] == "published"],
                            [self.record_iri(r["id"]) for r in rows], fmt)
            yield from fragments
            if len(rows) < size:
                return
            cursor = str(rows[-1]["id"])

    # -- single resources -----------------------------------------------------------------------
    def _row(self, dataset_id: str, fmt: str | None = None) -> dict[str, Any]:
        if not is_uuid(dataset_id):
            raise NotFound(f"dataset {dataset_id!r} not found")
        with self.db.transaction() as conn:
            row = ExportRepository(conn).one(dataset_id, fmt)
        if row is None or (row["status"] != "published" and row["published_at"] is None):
            raise NotFound(f"dataset {dataset_id!r} not found")
        return row

    def dataset(self, dataset_id: str, fmt: str) -> tuple[dict[str, Any], bytes]:
        """A published dataset's description and record as one document; withdrawn: Gone."""
        row = self._row(dataset_id, fmt)
        if row["status"] != "published":
            raise Gone(f"dataset {dataset_id!r} was withdrawn")
        with self.db.transaction() as conn:
            fragment = self.fragments(conn, [row], fmt)[0]
        return row, rdf.document(fmt, [fragment])

    def record(self, dataset_id: str, fmt: str) -> tuple[dict[str, Any], bytes]:
        """The catalogue record of a dataset (also of a withdrawn one: it says so)."""
        row = self._row(dataset_id)
        return row, rdf.document(fmt, [rdf.fragment(self._triples(row, None), fmt)])

    def ids_for_iri(self, iri: str) -> list[str]:
        prefix = f"{self.base}/dcat/datasets/"
        if iri.startswith(prefix) and is_uuid(iri[len(prefix):]):
            return [iri[len(prefix):]]
        with self.db.transaction() as conn:
            return ExportRepository(conn).by_iri(iri)

    def earliest(self) -> datetime | None:
        with self.db.transaction() as conn:
            return ExportRepository(conn).earliest()

    def validators(self, row: dict[str, Any], fmt: str) -> tuple[str, datetime]:
        key = f"{fmt}|{self.render_key(row)}|{row['status']}".encode()
        return '"' + hashlib.sha256(key).hexdigest()[:32] + '"', row["updated_at"]


def _pack_offsets(offsets: list[int]) -> bytes:
    return struct.pack(f"<{len(offsets)}Q", *offsets)


#: record-derived attributes whose values are codes or names (``CT``, ``CHEST``, ``SIEMENS``)
#: where EUCAIM-DCAT-AP requires EUCAIM hyper-ontology classes, with the vocabulary that maps
#: codes to them (None: no mapping known)
_EUCAIM_TERMS: tuple[tuple[str, str | None], ...] = (
    ("modalities", "modalities"), ("body_parts", "body_parts"),
    ("manufacturers", None), ("sexes", None))


def _published_terms(ds: Dataset) -> Dataset:
    """``ds`` with its aggregates applied, and their codes written as EUCAIM classes.

    A code is written as the EUCAIM class its vocabulary concept matches exactly. Codes
    without one cannot be said in EUCAIM-DCAT-AP: when none of an attribute's values can, the
    provider's declared values stay (the record-derived ones remain visible in search and the
    JSON API)."""
    if not ds.aggregates:
        return ds
    applied = ds.with_aggregates()
    changes: dict[str, Any] = {"aggregates": {}}
    for attr, vocabulary in _EUCAIM_TERMS:
        if not ds.aggregates.get(attr):
            continue
        vocab = get_vocabulary(vocabulary) if vocabulary else None
        values = []
        for value in getattr(applied, attr):
            if value.startswith(EUCAIM_NS):
                values.append(value)
                continue
            concept = vocab.resolve(value) if vocab else None
            match = next((m for m in concept.match_iris if m.startswith(EUCAIM_NS)), None) \
                if concept else None
            if match and match not in values:
                values.append(match)
        changes[attr] = values or getattr(ds, attr)
    return replace(applied, **changes)
