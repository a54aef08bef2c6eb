"""Dataset repository: structured columns plus the complete description graph."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import asdict
from typing import Any

from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from catalogue.errors import NotFound
from catalogue.model.dataset import Dataset, DatasetStatus, Distribution
from catalogue.store.db import Connection, is_uuid

_ARRAY_FIELDS = (
    "keywords",
    "themes",
    "health_categories",
    "conditions",
    "modalities",
    "body_parts",
    "manufacturers",
    "countries",
    "sexes",
)
_SCALAR_FIELDS = (
    "access_rights",
    "licence",
    "number_of_individuals",
    "number_of_studies",
    "min_age",
    "max_age",
    "temporal_start",
    "temporal_end",
    "landing_page",
    "issued",
    "modified",
    "iri",
    "graph",
    "source_id",
)
_JSON_FIELDS = ("title", "description", "fields", "aggregates", "validation")
_WRITABLE = _ARRAY_FIELDS + _SCALAR_FIELDS + _JSON_FIELDS
# bookkeeping that does not make a description "changed"
_NOT_HASHED = {"aggregates", "validation", "source_id"}


def content_hash(dataset: Dataset) -> str:
    """Hash of everything a provider controls, to skip unchanged re-submissions."""
    payload = {name: getattr(dataset, name) for name in _WRITABLE if name not in _NOT_HASHED}
    payload["distributions"] = [asdict(d) for d in dataset.distributions]
    payload["identifier"] = dataset.identifier
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _from_row(row: dict[str, Any], distributions: list[Distribution]) -> Dataset:
    values = {name: row[name] for name in _WRITABLE}
    values["source_id"] = str(row["source_id"]) if row["source_id"] else None
    return Dataset(
        id=str(row["id"]),
        identifier=row["identifier"],
        organisation_id=row["organisation_id"],
        status=DatasetStatus(row["status"]),
        content_hash=row["content_hash"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        version=row["version"],
        distributions=distributions,
        **values,
    )


class DatasetRepository:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def _distributions(self, dataset_ids: list[str]) -> dict[str, list[Distribution]]:
        out: dict[str, list[Distribution]] = {i: [] for i in dataset_ids}
        if not dataset_ids:
            return out
        # uuid[] (not dataset_id::text): the index on dataset_id is used, no scan of the table
        rows = self.conn.execute(
            "SELECT * FROM distributions WHERE dataset_id = ANY(%s::uuid[]) "
            "ORDER BY dataset_id, position",
            ([i for i in dataset_ids if is_uuid(i)],),
        ).fetchall()
        for r in rows:
            out[str(r["dataset_id"])].append(
                Distribution(
                    title=r["title"],
                    access_url=r["access_url"],
                    download_url=r["download_url"],
                    media_type=r["media_type"],
                    format=r["format"],
                    licence=r["licence"],
                    byte_size=r["byte_size"],
                )
            )
        return out

    def get(self, dataset_id: str, for_update: bool = False) -> Dataset:
        row = self.conn.execute(
            "SELECT * FROM datasets WHERE id = %s" + (" FOR UPDATE" if for_update else ""),
            (dataset_id,),
        ).fetchone() if is_uuid(dataset_id) else None
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found")
        return _from_row(row, self._distributions([str(row["id"])])[str(row["id"])])

    def find(self, organisation_id: str, identifier: str) -> Dataset | None:
        row = self.conn.execute(
            "SELECT * FROM datasets WHERE organisation_id = %s AND identifier = %s",
            (organisation_id, identifier),
        ).fetchone()
        if row is None:
            return None
        return _from_row(row, self._distributions([str(row["id"])])[str(row["id"])])

    def get_many(self, ids: list[str]) -> list[Dataset]:
        if not ids:
            return []
        # uuid[] (not id::text): a primary-key lookup, not a scan of every dataset
        rows = self.conn.execute(
            "SELECT * FROM datasets WHERE id = ANY(%s::uuid[])", ([i for i in ids if is_uuid(i)],)
        ).fetchall()
        dists = self._distributions([str(r["id"]) for r in rows])
        return [_from_row(r, dists[str(r["id"])]) for r in rows]

    #: what a search document is made of (:func:`catalogue.search.indexer.dataset_document`)
    _SEARCHED = ("identifier", "organisation_id", "status", "updated_at",
                 *_ARRAY_FIELDS, "access_rights", "licence", "number_of_individuals",
                 "number_of_studies", "min_age", "max_age", "temporal_start", "temporal_end",
                 "issued", "modified", "title", "description", "aggregates")

    def get_many_for_search(self, ids: list[str]) -> list[Dataset]:
        """Like :meth:`get_many`, with only what the search document is made of: no
        description graph, extra fields, validation report or distributions (an index
        rebuild reads every dataset; the graph alone is most of a row)."""
        ids = [i for i in ids if is_uuid(i)]
        if not ids:
            return []
        columns = ", ".join(self._SEARCHED)
        with self.conn.cursor(row_factory=tuple_row, binary=True) as cur:
            rows = cur.execute(f"SELECT id::text, {columns} FROM datasets "
                               "WHERE id = ANY(%s::uuid[])", (ids,)).fetchall()
        names = ("id", *self._SEARCHED)
        out = []
        for row in rows:
            values = dict(zip(names, row, strict=True))
            values["status"] = DatasetStatus(values["status"])
            out.append(Dataset(**values))
        return out

    def row_keys(self, ids: list[str]) -> dict[str, str]:
        """A key per dataset that changes whenever its row or any of its distributions is
        written (the rows' transaction ids, ``xmin``): for caches of :meth:`get_many`. Every
        UPDATE makes a new row version, so no write escapes it, whichever column it touches."""
        ids = [i for i in ids if is_uuid(i)]
        if not ids:
            return {}
        rows = self.conn.execute(
            "SELECT d.id::text AS id, d.xmin::text || ':' || coalesce((SELECT string_agg("
            "x.id::text || '.' || x.xmin::text, ',' ORDER BY x.id) FROM distributions x "
            "WHERE x.dataset_id = d.id), '') AS key FROM datasets d "
            "WHERE d.id = ANY(%s::uuid[])", (ids,)).fetchall()
        return {r["id"]: r["key"] for r in rows}

    def list_page(
        self,
        statuses: list[str] | None = None,
        organisation_id: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[int, list[Dataset]]:
        clauses, params = ["TRUE"], []  # type: tuple[list[str], list[Any]]
        if statuses:
            clauses.append("status = ANY(%s)")
            params.append(statuses)
        if organisation_id:
            clauses.append("organisation_id = %s")
            params.append(organisation_id)
        where = " AND ".join(clauses)
        total_row = self.conn.execute(
            f"SELECT count(*) AS n FROM datasets WHERE {where}", params
        ).fetchone()
        rows = self.conn.execute(
            f"SELECT * FROM datasets WHERE {where} ORDER BY updated_at DESC, id LIMIT %s OFFSET %s",
            [*params, limit, offset],
        ).fetchall()
        dists = self._distributions([str(r["id"]) for r in rows])
        assert total_row is not None
        return int(total_row["n"]), [_from_row(r, dists[str(r["id"])]) for r in rows]

    def all_ids(self) -> list[str]:
        return [str(r["id"]) for r in self.conn.execute("SELECT id FROM datasets ORDER BY id")]

    _INSERT_COLUMNS = ("organisation_id", "identifier", "status", "content_hash", "last_seen_run",
                       *_WRITABLE)

    def _insert_row(self, ds: Dataset, seen_run: str | None) -> list[Any]:
        return [ds.organisation_id, ds.identifier, ds.status.value, ds.content_hash, seen_run,
                *[self._adapt(n, getattr(ds, n)) for n in _WRITABLE]]

    def _insert_sql(self) -> str:
        cols = ", ".join(self._INSERT_COLUMNS)
        marks = ", ".join(["%s"] * len(self._INSERT_COLUMNS))
        return (f"INSERT INTO datasets ({cols}, published_at) VALUES ({marks}, "
                "CASE WHEN %s = 'published' THEN now() END) RETURNING id")

    _UPDATE_SQL = (
        f"UPDATE datasets SET {', '.join(f'{n} = %s' for n in _WRITABLE)}, status = %s, "
        "content_hash = %s, updated_at = now(), last_seen_run = coalesce(%s, last_seen_run), "
        "version = version + 1, "
        "published_at = CASE WHEN %s = 'published' THEN coalesce(published_at, now()) "
        "ELSE published_at END, "
        "withdrawn_at = CASE WHEN %s = 'withdrawn' THEN now() ELSE NULL END "
        "WHERE id = %s"
    )

    def _update_row(self, ds: Dataset, seen_run: str | None) -> list[Any]:
        return [*[self._adapt(n, getattr(ds, n)) for n in _WRITABLE], ds.status.value,
                ds.content_hash, seen_run, ds.status.value, ds.status.value, ds.id]

    def insert(self, ds: Dataset, *, reload: bool = True,
               seen_run: str | None = None) -> Dataset:
        """Insert; ``reload=False`` skips reading the row back (bulk harvests)."""
        ds.content_hash = ds.content_hash if not reload and ds.content_hash else content_hash(ds)
        row = self.conn.execute(
            self._insert_sql(), [*self._insert_row(ds, seen_run), ds.status.value]
        ).fetchone()
        assert row is not None
        ds.id = str(row["id"])
        self._write_distributions([ds], fresh=True)
        return self.get(ds.id) if reload else ds

    def update(self, ds: Dataset, *, reload: bool = True,
               seen_run: str | None = None) -> Dataset:
        assert ds.id is not None
        ds.content_hash = ds.content_hash if not reload and ds.content_hash else content_hash(ds)
        self.conn.execute(self._UPDATE_SQL, self._update_row(ds, seen_run))
        self._write_distributions([ds])
        return self.get(ds.id) if reload else ds

    def write_many(self, inserts: list[Dataset], updates: list[Dataset],
                   seen_run: str | None = None) -> None:
        """Insert ``inserts`` (one COPY) and update ``updates`` (``id`` set; one pipelined
        batch): bulk harvests, no per-record round trips, nothing read back. ``content_hash``
        must be set; new ids are set on the ``inserts``."""
        if inserts:
            # COPY: one stream for the whole batch; ids made here so nothing is read back
            now = self.conn.execute("SELECT now() AS now").fetchone()
            assert now is not None
            cols = ("id", *self._INSERT_COLUMNS, "published_at")
            with self.conn.cursor() as cur, cur.copy(
                f"COPY datasets ({', '.join(cols)}) FROM STDIN"
            ) as copy:
                for ds in inserts:
                    ds.id = str(uuid.uuid4())
                    copy.write_row([ds.id, *self._insert_row(ds, seen_run),
                                    now["now"] if ds.status == DatasetStatus.PUBLISHED else None])
        if updates:
            with self.conn.cursor() as cur:
                cur.executemany(self._UPDATE_SQL, [self._update_row(ds, seen_run)
                                                   for ds in updates])
        self._write_distributions(updates)
        self._write_distributions(inserts, fresh=True)

    def set_status(self, dataset_id: str, status: DatasetStatus) -> None:
        self.conn.execute(
            "UPDATE datasets SET status = %s, updated_at = now(), version = version + 1, "
            "published_at = CASE WHEN %s = 'published' THEN coalesce(published_at, now()) "
            "ELSE published_at END, "
            "withdrawn_at = CASE WHEN %s = 'withdrawn' THEN now() ELSE NULL END WHERE id = %s",
            (status.value, status.value, status.value, dataset_id),
        )

    def _write_distributions(self, datasets: list[Dataset], fresh: bool = False) -> None:
        if not datasets:
            return
        if not fresh:
            self.conn.execute("DELETE FROM distributions WHERE dataset_id = ANY(%s::uuid[])",
                              ([ds.id for ds in datasets],))
        rows = [
            (ds.id, Jsonb(d.title), d.access_url, d.download_url, d.media_type, d.format,
             d.licence, d.byte_size, i)
            for ds in datasets
            for i, d in enumerate(ds.distributions)
        ]
        if not rows:
            return
        with self.conn.cursor() as cur, cur.copy(
            "COPY distributions (dataset_id, title, access_url, download_url, media_type, "
            "format, licence, byte_size, position) FROM STDIN"
        ) as copy:
            for row in rows:
                copy.write_row(row)

    @staticmethod
    def _adapt(name: str, value: Any) -> Any:
        if name == "validation":
            return Jsonb(value or [])
        if name in _JSON_FIELDS:
            return Jsonb(value or {})
        if name in _ARRAY_FIELDS:
            return list(value or [])
        return value
