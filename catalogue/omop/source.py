"""OMOP CDM v5.4 in PostgreSQL: the tables a harvest reads and the queries that stream them.

Everything runs on one connection the caller opened (see :mod:`catalogue.harvest.omop`), in one
read-only REPEATABLE READ transaction, so every query sees the same snapshot and the highest ids
recorded for incremental runs are exactly those read. Large tables are read through server-side
(named) cursors, ``fetch_size`` rows at a time; nothing holds a table in memory. Rows come out as
the flat named tuples below (each with its person's columns), with exact dates: the harvester
turns them into ages and coarsened months and drops them. Each row also carries the md5 of the
columns its record is made from, computed by the server (the harvester keys it before use).

Tables: ``person`` (joined to every fact row), ``condition_occurrence``, and either the
medical-imaging extension (``image_occurrence`` with ``image_feature``; one row per series,
grouped here into studies by person and ``image_study_uid``) or, in a CDM without it,
``procedure_occurrence`` rows whose concept is an imaging procedure. Every stream comes in
person order, so a person's records arrive together. Concepts come from the ``concept`` table of
the vocabulary schema.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.rows import args_row

from catalogue.omop.concepts import SNOMED_IMAGING, Concept

#: the tables a harvest may read, in the CDM schema
FACT_TABLES = ("condition_occurrence", "image_occurrence", "procedure_occurrence")
_STUDY_SOURCES = ("auto", "image_occurrence", "procedure_occurrence")
_PRECISIONS = ("month", "year")


class OmopError(Exception):
    """The database is not a readable OMOP CDM (missing schema or tables, bad settings)."""


@dataclass(frozen=True)
class OmopSettings:
    """A source's settings (its ``config``), checked."""

    schema: str | None = None  # of the CDM tables; default: cdm if it has them, else public
    vocabulary_schema: str | None = None  # of the concept table; default: the CDM schema
    namespace: str | None = None  # of person ids in subject pseudonyms; default: the schema
    password_env: str | None = None  # environment variable holding the password
    connect_timeout: int = 10  # seconds
    statement_timeout: float = 900.0  # seconds, per statement (and per FETCH)
    fetch_size: int = 5000  # rows per round trip of a server-side cursor
    work_mem: str = "64MB"  # of the read session: the study grouping sorts in memory
    studies_from: str = "auto"  # image_occurrence | procedure_occurrence | auto (the former
    # when the CDM has it)
    imaging_concepts: dict[int, tuple[str, ...]] = field(default_factory=dict)  # concept id →
    # modality codes: the source's own mapping, before the built-in rules
    max_errors_per_table: int = 1000  # per run; further bad rows are counted, summarised once
    incremental: bool = False
    date_precision: str = "month"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> OmopSettings:
        """Settings from a source's configuration; raises :class:`OmopError` when one is bad."""
        def text(name: str) -> str | None:
            value = config.get(name)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise OmopError(f"setting {name!r} must be text")
            return value.strip()

        def number(name: str, default: float, low: float) -> float:
            value = config.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float | str):
                raise OmopError(f"setting {name!r} must be a number")
            try:
                found = float(value)
            except ValueError:
                raise OmopError(f"setting {name!r} must be a number") from None
            if found < low:
                raise OmopError(f"setting {name!r} must be at least {low:g}")
            return found

        studies_from = text("studies_from") or "auto"
        if studies_from not in _STUDY_SOURCES:
            raise OmopError(f"setting 'studies_from' must be one of {', '.join(_STUDY_SOURCES)}")
        precision = text("date_precision") or "month"
        if precision not in _PRECISIONS:
            raise OmopError("setting 'date_precision' must be month or year")
        work_mem = text("work_mem") or "64MB"
        if not work_mem.replace(" ", "").isalnum():
            raise OmopError("setting 'work_mem' must look like 64MB")
        overrides: dict[int, tuple[str, ...]] = {}
        given = config.get("imaging_concepts") or {}
        if not isinstance(given, dict):
            raise OmopError("setting 'imaging_concepts' must map concept ids to modality codes")
        for key, value in given.items():
            codes = [value] if isinstance(value, str) else value
            try:
                overrides[int(key)] = tuple(str(c).strip().upper() for c in codes)
            except (TypeError, ValueError):
                raise OmopError("setting 'imaging_concepts' must map concept ids to modality "
                                "codes") from None
        return cls(
            schema=text("schema"),
            vocabulary_schema=text("vocabulary_schema"),
            namespace=text("namespace"),
            password_env=text("password_env"),
            connect_timeout=int(number("connect_timeout", 10, 1)),
            statement_timeout=number("statement_timeout", 900.0, 1),
            fetch_size=int(number("fetch_size", 5000, 100)),
            work_mem=work_mem,
            studies_from=studies_from,
            imaging_concepts=overrides,
            max_errors_per_table=int(number("max_errors_per_table", 1000, 0)),
            incremental=bool(config.get("incremental")),
            date_precision=precision,
        )


class ConditionRow(NamedTuple):
    id: int
    person_id: int
    concept_id: int | None
    source_concept_id: int | None
    source_value: str | None
    digest: str  # md5 of the columns the record is made from (unkeyed: never stored as is)
    # the person (every fact row carries it; has_person False: no such person)
    has_person: bool
    gender_concept_id: int | None
    year_of_birth: int | None
    month_of_birth: int | None
    day_of_birth: int | None
    birth_datetime: datetime | None


class StudyRow(NamedTuple):
    """The image_occurrence rows (series) of one study of one person, in id order."""

    uid: str | None  # image_study_uid (None when blank): hashed at once, never kept
    person_id: int
    ids: list[int]
    modality_concept_ids: list[int | None]
    site_concept_ids: list[int | None]
    dates: list[date]
    feature_site_concept_ids: list[int] | None  # anatomic sites of its image_feature rows
    digest: str
    has_person: bool
    gender_concept_id: int | None
    year_of_birth: int | None
    month_of_birth: int | None
    day_of_birth: int | None
    birth_datetime: datetime | None


class ProcedureRow(NamedTuple):
    id: int
    person_id: int
    concept_id: int
    day: date | None
    digest: str
    has_person: bool
    gender_concept_id: int | None
    year_of_birth: int | None
    month_of_birth: int | None
    day_of_birth: int | None
    birth_datetime: datetime | None


#: what every fact row says of its person
FactRow = ConditionRow | StudyRow | ProcedureRow


_PERSON_COLUMNS = sql.SQL(
    "p.person_id IS NOT NULL, p.gender_concept_id, p.year_of_birth, p.month_of_birth, "
    "p.day_of_birth, p.birth_datetime")
_PERSON_DIGEST = sql.SQL(
    "p.person_id, p.gender_concept_id, p.year_of_birth, p.month_of_birth, p.day_of_birth, "
    "p.birth_datetime")


_UID = sql.SQL("NULLIF(btrim(io.image_study_uid), '')")


class OmopSource:
    """The OMOP CDM tables of one database, read in the connection's current transaction."""

    def __init__(self, conn: psycopg.Connection[Any], settings: OmopSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.schema = settings.schema or self._default_schema()
        self.tables = self._tables(self.schema)
        if "person" not in self.tables:
            raise OmopError(f"schema {self.schema!r} has no person table: is this an OMOP CDM? "
                            "(choose the schema with --schema)")
        self.vocabulary_schema = settings.vocabulary_schema or self.schema
        vocabulary_tables = (self.tables if self.vocabulary_schema == self.schema
                             else self._tables(self.vocabulary_schema))
        if "concept" not in vocabulary_tables:
            raise OmopError(f"schema {self.vocabulary_schema!r} has no concept table (choose "
                            "the vocabulary schema with --vocabulary-schema)")
        self.has_ancestors = "concept_ancestor" in vocabulary_tables
        self.namespace = settings.namespace or self.schema

    # -- discovery ----------------------------------------------------------------------------
    def _tables(self, schema: str) -> set[str]:
        return {str(r[0]).lower() for r in self.conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            (schema,))}

    def _default_schema(self) -> str:
        row = self.conn.execute(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = 'cdm' "
            "AND table_name = 'person')").fetchone()
        return "cdm" if row and row[0] else "public"

    @property
    def studies_from(self) -> str | None:
        """The table imaging studies come from, or None when the CDM has neither."""
        wanted = self.settings.studies_from
        if wanted == "auto":
            wanted = ("image_occurrence" if "image_occurrence" in self.tables
                      else "procedure_occurrence")
        return wanted if wanted in self.tables else None

    def _table(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name)

    def max_ids(self) -> dict[str, int]:
        """The highest row id of every fact table present (0 when empty)."""
        found = {}
        for table in FACT_TABLES:
            if table in self.tables:
                row = self.conn.execute(sql.SQL("SELECT max({}) FROM {}").format(
                    sql.Identifier(f"{table}_id"), self._table(table))).fetchone()
                found[table] = int(row[0]) if row and row[0] is not None else 0
        return found

    # -- concepts -----------------------------------------------------------------------------
    def concepts(self, ids: Sequence[int]) -> list[Concept]:
        rows = self.conn.execute(
            sql.SQL("SELECT concept_id, concept_name, domain_id, vocabulary_id, "
                    "concept_class_id, concept_code FROM {} WHERE concept_id = ANY(%s)").format(
                sql.Identifier(self.vocabulary_schema, "concept")), (list(ids),))
        return [Concept(int(r[0]), str(r[1] or ""), str(r[2] or ""), str(r[3] or ""),
                        str(r[4] or ""), str(r[5] or "")) for r in rows]

    def concepts_by_code(self, codes: Iterable[str], vocabularies: Sequence[str]
                         ) -> list[Concept]:
        """Concepts of ``vocabularies`` whose code is one of ``codes`` (for source values
        without a source concept)."""
        wanted = sorted({c.strip() for c in codes if c and c.strip()})
        if not wanted:
            return []
        rows = self.conn.execute(
            sql.SQL("SELECT concept_id, concept_name, domain_id, vocabulary_id, "
                    "concept_class_id, concept_code FROM {} WHERE concept_code = ANY(%s) "
                    "AND vocabulary_id = ANY(%s)").format(
                sql.Identifier(self.vocabulary_schema, "concept")),
            (wanted, list(vocabularies)))
        return [Concept(int(r[0]), str(r[1] or ""), str(r[2] or ""), str(r[3] or ""),
                        str(r[4] or ""), str(r[5] or "")) for r in rows]

    def imaging_descendants(self, ids: Sequence[int]) -> set[int]:
        """Those of ``ids`` under SNOMED "Imaging" in the CDM's concept_ancestor (empty when
        the CDM ships no hierarchy)."""
        if not self.has_ancestors or not ids:
            return set()
        vocabulary = sql.Identifier(self.vocabulary_schema, "concept")
        ancestors = sql.Identifier(self.vocabulary_schema, "concept_ancestor")
        rows = self.conn.execute(
            sql.SQL("SELECT DISTINCT a.descendant_concept_id FROM {} a JOIN {} c "
                    "ON c.concept_id = a.ancestor_concept_id WHERE c.vocabulary_id = 'SNOMED' "
                    "AND c.concept_code = %s AND a.descendant_concept_id = ANY(%s)").format(
                ancestors, vocabulary), (SNOMED_IMAGING, list(ids)))
        return {int(r[0]) for r in rows}

    # -- streams ------------------------------------------------------------------------------
    def _stream(self, name: str, query: sql.Composed, params: dict[str, Any],
                row_type: Any) -> Iterator[list[Any]]:
        with self.conn.cursor(name=f"catalogue_{name}", binary=True,
                              row_factory=args_row(row_type)) as cur:
            cur.itersize = self.settings.fetch_size
            cur.execute(query, params)
            while True:
                rows = cur.fetchmany(self.settings.fetch_size)
                if not rows:
                    return
                yield rows

    def conditions(self, since: int | None) -> Iterator[list[ConditionRow]]:
        """condition_occurrence rows (with ids above ``since``) in person order, with their
        person."""
        where = sql.SQL("WHERE co.condition_occurrence_id > %(since)s" if since is not None
                        else "")
        query = sql.SQL(
            "SELECT co.condition_occurrence_id, co.person_id, co.condition_concept_id, "
            "co.condition_source_concept_id, co.condition_source_value, "
            "md5(ROW(co.person_id, co.condition_concept_id, co.condition_source_concept_id, "
            "co.condition_source_value, {digest})::text), {person} "
            "FROM {table} co LEFT JOIN {persons} p ON p.person_id = co.person_id {where} "
            "ORDER BY co.person_id, co.condition_occurrence_id"
        ).format(person=_PERSON_COLUMNS, digest=_PERSON_DIGEST,
                 table=self._table("condition_occurrence"), persons=self._table("person"),
                 where=where)
        return self._stream("conditions", query, {"since": since}, ConditionRow)

    def _changed_studies(self, since: int | None) -> sql.Composable:
        """The filter of incremental runs: studies that gained a row with an id above
        ``since`` (with all their rows)."""
        if since is None:
            return sql.SQL("")
        return sql.SQL("WHERE io.image_occurrence_id > %(since)s OR {uid} IN ("
                       "SELECT NULLIF(btrim(image_study_uid), '') FROM {table} "
                       "WHERE image_occurrence_id > %(since)s)").format(
            uid=_UID, table=self._table("image_occurrence"))

    def shared_study_uids(self, since: int | None) -> list[str]:
        """Study UIDs whose series name more than one person (a data error)."""
        rows = self.conn.execute(sql.SQL(
            "SELECT {uid} FROM {table} io {where} GROUP BY 1 "
            "HAVING {uid} IS NOT NULL AND min(io.person_id) <> max(io.person_id)").format(
            uid=_UID, table=self._table("image_occurrence"),
            where=self._changed_studies(since)), {"since": since})
        return [str(r[0]) for r in rows]

    def studies(self, since: int | None) -> Iterator[list[StudyRow]]:
        """Imaging studies in person order: the image_occurrence rows of one person grouped by
        study UID (a blank UID makes a study of its row), with the anatomic sites of their
        image_feature rows and the person. With ``since``: the studies that gained a row with a
        higher id, with all their rows."""
        features: sql.Composable = sql.SQL("NULL::text")
        join: sql.Composable = sql.SQL("")
        if "image_feature" in self.tables:
            # one row per occurrence with features, so the join does not repeat series
            features = sql.SQL("f.sites")
            join = sql.SQL(
                "LEFT JOIN (SELECT image_occurrence_id, string_agg(DISTINCT "
                "anatomic_site_concept_id::text, ',') AS sites FROM {features} "
                "WHERE anatomic_site_concept_id <> 0 GROUP BY image_occurrence_id) f "
                "ON f.image_occurrence_id = io.image_occurrence_id").format(
                features=self._table("image_feature"))
        # grouped by (person, uid, row id when the uid is blank): sorting on the person first
        # is cheaper than on the uid, and gives every subject's studies together
        query = sql.SQL(
            "SELECT g.uid, g.person_id, g.ids, g.modalities, g.sites, g.dates, "
            "string_to_array(g.feature_sites, ',')::int[], "
            "md5(ROW(g.ids, g.modalities, g.sites, g.dates, g.feature_sites, {digest})::text), "
            "{person} FROM ("
            "SELECT io.person_id, {uid} AS uid, "
            "CASE WHEN {uid} IS NULL THEN io.image_occurrence_id END AS lone, "
            "array_agg(io.image_occurrence_id ORDER BY io.image_occurrence_id) AS ids, "
            "array_agg(io.modality_concept_id ORDER BY io.image_occurrence_id) AS modalities, "
            "array_agg(io.anatomic_site_concept_id ORDER BY io.image_occurrence_id) AS sites, "
            "array_agg(io.image_occurrence_date ORDER BY io.image_occurrence_id) AS dates, "
            "string_agg({features}, ',') AS feature_sites "
            "FROM {table} io {join} {where} GROUP BY 1, 2, 3) g "
            "LEFT JOIN {persons} p ON p.person_id = g.person_id ORDER BY g.person_id"
        ).format(uid=_UID, person=_PERSON_COLUMNS, digest=_PERSON_DIGEST, features=features,
                 join=join, where=self._changed_studies(since),
                 table=self._table("image_occurrence"), persons=self._table("person"))
        return self._stream("studies", query, {"since": since}, StudyRow)

    def procedure_concept_ids(self, since: int | None) -> list[int]:
        """The distinct procedure concepts of procedure_occurrence (rows above ``since``)."""
        where = sql.SQL("WHERE procedure_occurrence_id > %(since)s" if since is not None
                        else "")
        rows = self.conn.execute(
            sql.SQL("SELECT DISTINCT procedure_concept_id FROM {} {}").format(
                self._table("procedure_occurrence"), where), {"since": since})
        return sorted(int(r[0]) for r in rows if r[0])

    def procedures(self, concept_ids: Sequence[int], since: int | None
                   ) -> Iterator[list[ProcedureRow]]:
        """procedure_occurrence rows with one of ``concept_ids``, in person order, with their
        person."""
        where = sql.SQL("AND po.procedure_occurrence_id > %(since)s" if since is not None
                        else "")
        query = sql.SQL(
            "SELECT po.procedure_occurrence_id, po.person_id, po.procedure_concept_id, "
            "po.procedure_date, md5(ROW(po.person_id, po.procedure_concept_id, "
            "po.procedure_date, {digest})::text), {person} FROM {table} po "
            "LEFT JOIN {persons} p ON p.person_id = po.person_id "
            "WHERE po.procedure_concept_id = ANY(%(ids)s) {where} "
            "ORDER BY po.person_id, po.procedure_occurrence_id"
        ).format(person=_PERSON_COLUMNS, digest=_PERSON_DIGEST,
                 table=self._table("procedure_occurrence"), persons=self._table("person"),
                 where=where)
        return self._stream("procedures", query, {"ids": list(concept_ids), "since": since},
                            ProcedureRow)
