"""Queries behind the DCAT-AP export and OAI-PMH: keyset pages of datasets and their records,
and the cache of rendered fragments (``dataset_exports``).

Pages are keyset pages ordered by dataset id: a dataset's place never moves, so a harvester
paging while datasets are added, edited or withdrawn never sees one twice and never misses one
that existed when it started (a dataset added meanwhile is seen at most once; the next
incremental harvest finds it in any case).

Fragments are stored LZ4-compressed by the application (:func:`pack`), small enough to stay in
the row (migration 0006): PostgreSQL's own TOAST compression (pglz) decompresses at about
300 MB/s and every 2 KB piece of an out-of-line value is an index lookup, which made reading the
stored bytes slower than Oxigraph writing them afresh; LZ4 decompresses an order of magnitude
faster.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import lz4.block
from psycopg.rows import tuple_row

from catalogue.store.db import Connection

#: the first byte of a stored fragment: how the rest is encoded
_LZ4 = b"\x01"
#: the largest fragment unpacked (a description of one dataset is a few KB; a corrupt size
#: field must not make the decompressor reserve gigabytes)
MAX_FRAGMENT = 64 * 2**20


def pack(body: bytes) -> bytes:
    """A fragment as stored: the codec byte, then an LZ4 block with its size."""
    return _LZ4 + lz4.block.compress(body, store_size=True)


def unpack(stored: bytes | memoryview | None) -> bytes | None:
    """The fragment a stored value holds; None when it is not one this version reads (the
    caller renders it again)."""
    if not stored or stored[:1] != _LZ4 or len(stored) < 5 or \
            int.from_bytes(stored[1:5], "little") > MAX_FRAGMENT:
        return None
    try:
        return lz4.block.decompress(memoryview(stored)[1:])
    except (lz4.block.LZ4BlockError, ValueError):
        return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: SQL for ``micros(d.updated_at)`` (exact: ``extract`` gives a numeric)
_CHANGED_SQL = "(extract(epoch FROM d.updated_at) * 1000000)::int8"


def micros(value: datetime) -> int:
    """A timestamp as whole microseconds since the epoch (what :data:`_CHANGED_SQL` gives)."""
    return (value - _EPOCH) // _MICROSECOND


class PageRow(NamedTuple):
    """A dataset on an export page: what a page made of stored fragments needs."""

    id: str
    iri: str | None
    status: str
    version: int
    changed: int  # updated_at in microseconds since the epoch
    body: bytes | None  # its stored fragment (packed), when the render key is current


#: the row columns an export page needs (no distributions: fragments are cached)
_COLUMNS = (  # the id as text: every caller wants the string (and a page has 1,000)
    "d.id::text AS id, d.identifier, d.organisation_id, d.iri, d.status, d.version, d.created_at, "
    "d.updated_at, d.published_at, d.withdrawn_at, d.source_id, d.last_seen_run, "
    "s.kind AS source_kind, s.url AS source_url, r.finished_at AS harvested_at"
)
_FROM = (
    "FROM datasets d LEFT JOIN harvest_sources s ON s.id = d.source_id "
    "LEFT JOIN harvest_runs r ON r.id = d.last_seen_run"
)


@dataclass(frozen=True)
class Selection:
    """Which datasets a listing holds.

    Without ``since`` (a complete listing): the published datasets. With ``since``: the
    datasets changed after it (``updated_at > since``) that are published, plus those that
    were published once and are not any more (announced as deleted). ``until`` bounds changes
    from above (OAI-PMH), ``organisation`` restricts to one provider.
    """

    since: datetime | None = None
    until: datetime | None = None
    organisation: str | None = None
    include_deleted: bool | None = None  # default: only with ``since``

    def where(self, alias: str = "d") -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        deleted = self.include_deleted if self.include_deleted is not None \
            else self.since is not None
        if deleted:
            clauses.append(f"({alias}.status = 'published' OR {alias}.published_at IS NOT NULL)")
        else:
            clauses.append(f"{alias}.status = 'published'")
        if self.since is not None:
            clauses.append(f"{alias}.updated_at > %s")
            params.append(self.since)
        if self.until is not None:
            clauses.append(f"{alias}.updated_at <= %s")
            params.append(self.until)
        if self.organisation is not None:
            clauses.append(f"{alias}.organisation_id = %s")
            params.append(self.organisation)
        return " AND ".join(clauses), params


class ExportRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def count(self, selection: Selection) -> int:
        where, params = selection.where()
        row = self.conn.execute(f"SELECT count(*) AS n FROM datasets d WHERE {where}",
                                params).fetchone()
        assert row is not None
        return int(row["n"])

    def page(self, selection: Selection, after: str | None, limit: int,
             fmt: str | None = None) -> list[dict[str, Any]]:
        """Up to ``limit`` rows after the dataset id ``after``, with the cached fragment in
        ``fmt`` (``cached_key``, ``cached_body``) when there is one."""
        where, params = selection.where()
        if after is not None:
            where += " AND d.id > %s"
            params.append(after)
        cache = ""
        columns = _COLUMNS
        if fmt is not None:
            # bounded by the cursor too: otherwise the join scans the fragments' key from the
            # start on every page, and deep pages get slower (199 ms vs 7 ms at 90,000)
            cache = " LEFT JOIN dataset_exports e ON e.dataset_id = d.id AND e.format = %s"
            join: list[Any] = [fmt]
            if after is not None:
                cache += " AND e.dataset_id > %s"
                join.append(after)
            columns += ", e.render_key AS cached_key, e.body AS cached_body"
            params = join + params
        # binary results: fragments arrive as bytes, not hex text to decode
        rows = self.conn.execute(
            f"SELECT {columns} {_FROM}{cache} WHERE {where} ORDER BY d.id LIMIT %s",
            [*params, limit], binary=True,
        ).fetchall()
        return list(rows)

    def listing(self, selection: Selection, after: str | None, limit: int) -> list[PageRow]:
        """Up to ``limit`` datasets after the id ``after``: only the few columns a page of
        stored fragments needs, as tuples (building a thousand full rows took longer than the
        query), without fragments (``body`` None: see :meth:`fragments`)."""
        if after is None:
            return self._lean(selection, "", [], "", limit)
        return self._lean(selection, " AND d.id > %s", [after], "", limit)

    def listing_back(self, selection: Selection, upto: str, limit: int) -> list[PageRow]:
        """Up to ``limit`` datasets at or before the id ``upto``, nearest first (the rows of
        a run that a page starts in the middle of, before the page)."""
        return self._lean(selection, " AND d.id <= %s", [upto], " DESC", limit)

    def _lean(self, selection: Selection, bound: str, bound_params: list[Any], order: str,
              limit: int) -> list[PageRow]:
        where, params = selection.where()
        with self.conn.cursor(row_factory=tuple_row, binary=True) as cur:
            cur.execute(f"SELECT d.id::text, d.iri, d.status, d.version, {_CHANGED_SQL}, "
                        f"NULL::bytea FROM datasets d WHERE {where}{bound} "
                        f"ORDER BY d.id{order} LIMIT %s", [*params, *bound_params, limit])
            return [PageRow(*row) for row in cur.fetchall()]

    def fragments(self, fmt: str, ids: list[str], span: bool) -> dict[str, tuple[str, bytes]]:
        """The stored fragments in ``fmt`` of these datasets (ids in order): id -> (render key,
        packed body). ``span``: read every fragment between the first and the last id (one
        range of the primary key, for a listing that holds most datasets of its range; about
        half the time of looking each id up), else each id."""
        if not ids:
            return {}
        params: list[Any] = [fmt]
        if span:
            where = "dataset_id >= %s AND dataset_id <= %s"
            params += [ids[0], ids[-1]]
        else:
            where = "dataset_id = ANY(%s::uuid[])"
            params.append(ids)
        with self.conn.cursor(row_factory=tuple_row, binary=True) as cur:
            cur.execute(f"SELECT dataset_id::text, render_key, body FROM dataset_exports "
                        f"WHERE format = %s AND {where}", params)
            return {row[0]: (row[1], row[2]) for row in cur.fetchall()}

    def rows(self, ids: list[str]) -> list[dict[str, Any]]:
        """The full rows of these datasets (without fragments), in id order."""
        return list(self.conn.execute(
            f"SELECT {_COLUMNS} {_FROM} WHERE d.id = ANY(%s::uuid[]) ORDER BY d.id",
            (ids,)).fetchall())

    def start_of_last_page(self, selection: Selection, size: int, total: int) -> str | None:
        """The id after which the last page of ``size`` starts (None: the last page is the
        first)."""
        if total <= size:
            return None
        offset = ((total - 1) // size) * size - 1
        where, params = selection.where()
        row = self.conn.execute(
            f"SELECT d.id FROM datasets d WHERE {where} ORDER BY d.id OFFSET %s LIMIT 1",
            [*params, offset],
        ).fetchone()
        return str(row["id"]) if row else None

    def one(self, dataset_id: str, fmt: str | None = None) -> dict[str, Any] | None:
        params: list[Any] = [dataset_id]
        cache, columns = "", _COLUMNS
        if fmt is not None:
            cache = " LEFT JOIN dataset_exports e ON e.dataset_id = d.id AND e.format = %s"
            columns += ", e.render_key AS cached_key, e.body AS cached_body"
            params.insert(0, fmt)
        row = self.conn.execute(f"SELECT {columns} {_FROM}{cache} WHERE d.id = %s",
                                params).fetchone()
        return dict(row) if row else None

    def by_iri(self, iri: str) -> list[str]:
        rows = self.conn.execute(
            "SELECT id FROM datasets WHERE iri = %s AND (status = 'published' OR "
            "published_at IS NOT NULL) ORDER BY id", (iri,)).fetchall()
        return [str(r["id"]) for r in rows]

    def last_change(self) -> datetime | None:
        """When any dataset last changed: a listing cannot have changed after it (an index-only
        scan, unlike the listing's own maximum; conservative for filtered listings)."""
        row = self.conn.execute("SELECT max(updated_at) AS m FROM datasets").fetchone()
        return row["m"] if row else None

    def earliest(self) -> datetime | None:
        row = self.conn.execute("SELECT min(updated_at) AS m FROM datasets WHERE status = "
                                "'published' OR published_at IS NOT NULL").fetchone()
        return row["m"] if row else None

    def save_fragments(self, rows: list[tuple[str, str, str, bytes]]) -> None:
        """Store rendered fragments: (dataset id, format, render key, body), packed."""
        if not rows:
            return
        with self.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO dataset_exports (dataset_id, format, render_key, body) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (dataset_id, format) DO UPDATE SET "
                "render_key = excluded.render_key, body = excluded.body",
                [(dataset, fmt, key, pack(body)) for dataset, fmt, key, body in rows])
