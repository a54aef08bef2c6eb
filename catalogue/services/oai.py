"""OAI-PMH 2.0 data provider: the catalogue's records for harvesters of other data spaces.

Records are the published datasets plus those published once and no longer published, which are
announced as deleted (``deletedRecord`` is ``persistent``: a dataset row is never forgotten).
The OAI identifier of a record is the dataset IRI, its datestamp the dataset's last change (UTC,
seconds), its set the providing organisation. Two metadata formats: ``oai_dc`` (mandatory by the
protocol) and ``dcat_ap``, the dataset's DCAT-AP description as RDF/XML (the export's cached
fragment under an ``rdf:RDF`` element).

Lists are keyset pages ordered by dataset id; a resumption token is stateless (the selection,
the last id and the cursor, signed with the runtime's secret), so harvests survive restarts and
never see a record twice while the catalogue changes. The protocol layer is here; the HTTP
layer (``catalogue.api.oai``) only passes the request's arguments in and streams the bytes out.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from catalogue.dcat import export as rdf
from catalogue.model.dataset import Dataset
from catalogue.services.export import ExportService
from catalogue.store.datasets import DatasetRepository
from catalogue.store.db import Database, is_uuid
from catalogue.store.exports import ExportRepository, Selection
from catalogue.store.oai import OaiRepository

OAI_NS = "http://www.openarchives.org/OAI/2.0/"
OAI_SCHEMA = "http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
OAI_DC_NS = "http://www.openarchives.org/OAI/2.0/oai_dc/"
OAI_DC_SCHEMA = "http://www.openarchives.org/OAI/2.0/oai_dc.xsd"
DC_NS = "http://purl.org/dc/elements/1.1/"
RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
#: the lax schema of ``rdf:RDF`` shipped in ontologies/xsd and served under /oai/schemas/
RDF_SCHEMA_FILE = "rdf-lax.xsd"

#: records (or headers) per list response
PAGE_SIZE = 100
GRANULARITY = "YYYY-MM-DDThh:mm:ssZ"
#: longest resumption token accepted (ours are about 250 characters)
MAX_TOKEN_LENGTH = 2048

_PREFIX_SYNTAX = re.compile(r"[A-Za-z0-9\-_.!~*'()]+\Z")
_SETSPEC_SYNTAX = re.compile(r"[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*\Z")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_SECOND = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z\Z")
_TOKEN_SYNTAX = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\Z")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*\Z")
# characters XML 1.0 does not allow (in text, raw or as references); removed, never escaped
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_XML_UTF8 = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]|\xef\xbf[\xbe\xbf]")
_XML_DECLARATION = re.compile(rb"\A<\?xml[^>]*\?>\s*")
_EU_LANGUAGE = "http://publications.europa.eu/resource/authority/language/"


# -- XML text ---------------------------------------------------------------------------------


def text(value: object) -> str:
    """``value`` as XML character data: characters XML 1.0 forbids removed, markup escaped."""
    return _NOT_XML.sub("", str(value)).replace("&", "&amp;").replace("<", "&lt;") \
        .replace(">", "&gt;")


def attr(value: object) -> str:
    """``value`` as a double-quoted XML attribute value (whitespace kept as references)."""
    return text(value).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;") \
        .replace("\r", "&#13;")


def clean_xml(fragment: bytes) -> bytes:
    """A UTF-8 XML fragment without the characters XML 1.0 forbids (a literal with a control
    character would otherwise make the whole response ill-formed)."""
    return _NOT_XML_UTF8.sub(b"", fragment)


def datestamp(value: datetime) -> str:
    """A UTC datestamp at the repository's granularity (seconds)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _element(name: str, value: object, attributes: str = "") -> str:
    return f"<{name}{attributes}>{text(value)}</{name}>"


@lru_cache(maxsize=1)
def rdf_open_tag() -> bytes:
    """The export's ``<rdf:RDF ...>`` start tag (its namespace declarations), without the XML
    declaration."""
    return _XML_DECLARATION.sub(b"", rdf.envelope("rdfxml").head).rstrip()


# -- the protocol's vocabulary ----------------------------------------------------------------


class OaiError(Exception):
    """A protocol error: answered with HTTP 200 and an ``<error code=...>`` element."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


#: errors whose response must not echo the request's arguments (spec 3.2)
_BARE_REQUEST = frozenset({"badVerb", "badArgument"})


@dataclass(frozen=True)
class MetadataFormat:
    prefix: str
    schema: str
    namespace: str


@dataclass(frozen=True)
class Verb:
    """The arguments a verb takes: ``exclusive`` may only come alone."""

    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    exclusive: str | None = None

    def names(self) -> frozenset[str]:
        return frozenset(self.required + self.optional + ((self.exclusive,) if self.exclusive
                                                            else ()))


_LIST = Verb(required=("metadataPrefix",), optional=("from", "until", "set"),
             exclusive="resumptionToken")
VERBS: dict[str, Verb] = {
    "Identify": Verb(),
    "ListMetadataFormats": Verb(optional=("identifier",)),
    "ListSets": Verb(exclusive="resumptionToken"),
    "GetRecord": Verb(required=("identifier", "metadataPrefix")),
    "ListIdentifiers": _LIST,
    "ListRecords": _LIST,
}
#: syntax of argument values the response echoes as typed attributes
_SYNTAX: dict[str, re.Pattern[str]] = {"metadataPrefix": _PREFIX_SYNTAX,
                                       "set": _SETSPEC_SYNTAX}


# -- dates --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instant:
    """A ``from``/``until`` argument: as given, and whether it is a day or a second."""

    raw: str
    start: datetime  # the first microsecond it covers
    day: bool

    @property
    def end(self) -> datetime:
        """The last microsecond it covers."""
        span = timedelta(days=1) if self.day else timedelta(seconds=1)
        try:
            return self.start + span - timedelta(microseconds=1)
        except OverflowError:
            return datetime.max.replace(tzinfo=UTC)


def parse_instant(raw: str, name: str) -> Instant:
    """A UTC datestamp in either granularity, else badArgument."""
    try:
        if _DAY.match(raw):
            value = datetime.strptime(raw, "%Y-%m-%d")
            return Instant(raw, value.replace(tzinfo=UTC), True)
        if _SECOND.match(raw):
            value = datetime.strptime(raw, "%Y-%m-%dT%H:%M:%SZ")
            return Instant(raw, value.replace(tzinfo=UTC), False)
    except ValueError:
        pass
    raise OaiError("badArgument", f"{name}: {raw!r} is not a UTC datestamp "
                                  f"(YYYY-MM-DD or {GRANULARITY})")


def _bounds(start: Instant | None, end: Instant | None) -> tuple[datetime | None,
                                                               datetime | None]:
    """``Selection`` bounds for the inclusive range (``since`` is exclusive)."""
    if start is not None and end is not None:
        if start.day != end.day:
            raise OaiError("badArgument", "from and until must have the same granularity")
        if start.start > end.start:
            raise OaiError("badArgument", "from is later than until")
    since = None
    if start is not None:
        try:
            since = start.start - timedelta(microseconds=1)
        except OverflowError:
            since = None
    return since, (end.end if end is not None else None)


# -- resumption tokens --------------------------------------------------------------------------


@dataclass(frozen=True)
class ListState:
    """Everything a list request needs: the arguments, and where the previous page ended."""

    verb: str
    prefix: str
    set: str | None = None
    start: Instant | None = None
    end: Instant | None = None
    after: str | None = None  # the last dataset id already sent
    cursor: int = 0  # how many records were sent before this page


class TokenCodec:
    """Opaque, URL-safe resumption tokens: the list state as JSON, signed (HMAC-SHA256)."""

    _KEYS = frozenset({"v", "verb", "p", "s", "f", "u", "a", "c"})

    def __init__(self, secret: str) -> None:
        self._key = hashlib.sha256(b"catalogue oai-pmh resumption token\x00"
                                   + secret.encode()).digest()

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:18]

    @staticmethod
    def _b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    @staticmethod
    def _unb64(data: str) -> bytes:
        return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))

    def encode(self, state: ListState) -> str:
        payload = json.dumps(
            {"v": 1, "verb": state.verb, "p": state.prefix, "s": state.set,
             "f": state.start.raw if state.start else None,
             "u": state.end.raw if state.end else None, "a": state.after, "c": state.cursor},
            separators=(",", ":"), sort_keys=True).encode()
        return f"{self._b64(payload)}.{self._b64(self._mac(payload))}"

    def decode(self, token: str, verb: str, formats: Iterable[str]) -> ListState:
        """The state ``token`` carries, checked to the last field; else badResumptionToken."""
        bad = OaiError("badResumptionToken", "the resumptionToken is invalid or was not "
                                             "issued by this repository for this verb")
        if len(token) > MAX_TOKEN_LENGTH or not _TOKEN_SYNTAX.match(token):
            raise bad
        body, mac = token.split(".")
        try:
            payload, signature = self._unb64(body), self._unb64(mac)
            data = json.loads(payload)
        except (binascii.Error, ValueError):
            raise bad from None
        if not hmac.compare_digest(signature, self._mac(payload)):
            raise bad
        if not isinstance(data, dict) or set(data) != self._KEYS or type(data["v"]) is not int \
                or data["v"] != 1 \
                or data["verb"] != verb or not isinstance(data["p"], str) \
                or data["p"] not in set(formats):
            raise bad
        after, cursor, set_spec = data["a"], data["c"], data["s"]
        if not isinstance(after, str) or not is_uuid(after) \
                or not isinstance(cursor, int) or isinstance(cursor, bool) or cursor <= 0 \
                or not (set_spec is None or (isinstance(set_spec, str)
                                             and _SETSPEC_SYNTAX.match(set_spec))):
            raise bad
        instants = []
        for name, raw in (("from", data["f"]), ("until", data["u"])):
            if raw is not None and not isinstance(raw, str):
                raise bad
            try:
                instants.append(parse_instant(raw, name) if raw is not None else None)
            except OaiError:
                raise bad from None
        try:
            _bounds(instants[0], instants[1])
        except OaiError:
            raise bad from None
        return ListState(verb, data["p"], set_spec, instants[0], instants[1], after, cursor)


# -- the provider ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    rows: list[dict[str, Any]]
    total: int
    token: str | None  # None: no resumptionToken element; "": the empty one ending a list
    cursor: int


Handler = Callable[[dict[str, str]], Iterator[str | bytes]]


class OaiProvider:
    """Answers OAI-PMH requests; every answer is an XML document streamed as bytes."""

    def __init__(self, db: Database, export: ExportService, *, repository_name: str,
                 admin_email: str, base_url: str, secret: str,
                 page_size: int = PAGE_SIZE) -> None:
        self.db = db
        self.export = export
        self.repository_name = repository_name
        self.admin_email = admin_email
        self.base_url = base_url.rstrip("/") + "/oai"
        self.page_size = page_size
        self.tokens = TokenCodec(secret)
        self.formats: dict[str, MetadataFormat] = {
            "oai_dc": MetadataFormat("oai_dc", OAI_DC_SCHEMA, OAI_DC_NS),
            "dcat_ap": MetadataFormat("dcat_ap", f"{self.base_url}/schemas/{RDF_SCHEMA_FILE}",
                                      RDF_NS),
        }
        self._handlers: dict[str, Handler] = {
            "Identify": self._identify,
            "ListMetadataFormats": self._list_metadata_formats,
            "ListSets": self._list_sets,
            "GetRecord": self._get_record,
            "ListIdentifiers": self._list_identifiers,
            "ListRecords": self._list_records,
        }
        self._metadata: dict[str, Callable[[list[dict[str, Any]]],
                                           dict[str, Callable[[], bytes]]]] = {
            "oai_dc": self._dublin_core,
            "dcat_ap": self._dcat_ap,
        }

    # -- request ---------------------------------------------------------------------------
    def respond(self, arguments: Sequence[tuple[str, str]],
                now: datetime | None = None) -> Iterator[bytes]:
        """The response document to a request with ``arguments`` (key/value pairs in order,
        repeats kept). The database work happens before the first byte; a protocol error is a
        document too."""
        now = now or datetime.now(UTC)
        echo: list[tuple[str, str]] = []
        try:
            verb, args = self._check(arguments)
            echo = [("verb", verb), *args.items()]
            parts: Iterator[str | bytes] = self._handlers[verb](args)
            first = next(parts, None)  # runs the handler up to its first output
        except OaiError as error:
            if error.code in _BARE_REQUEST:
                echo = []
            return self._document(now, echo, iter([_element("error", error.message,
                                                            f' code="{error.code}"') + "\n"]))
        return self._document(now, echo, _chain(first, parts))

    def _check(self, arguments: Sequence[tuple[str, str]]) -> tuple[str, dict[str, str]]:
        verbs = [value for name, value in arguments if name == "verb"]
        if not verbs:
            raise OaiError("badVerb", "the verb argument is missing")
        if len(verbs) > 1:
            raise OaiError("badVerb", "the verb argument is repeated")
        if verbs[0] not in VERBS:
            raise OaiError("badVerb", f"{verbs[0]!r} is not an OAI-PMH verb")
        verb, spec = verbs[0], VERBS[verbs[0]]
        args: dict[str, str] = {}
        for name, value in arguments:
            if name == "verb":
                continue
            if name in args:
                raise OaiError("badArgument", f"the argument {name!r} is repeated")
            if name not in spec.names():
                raise OaiError("badArgument", f"{verb} takes no argument {name!r}")
            args[name] = value
        if spec.exclusive is not None and spec.exclusive in args:
            if len(args) > 1:
                raise OaiError("badArgument", f"{spec.exclusive} is an exclusive argument")
            return verb, args
        missing = [name for name in spec.required if name not in args]
        if missing:
            raise OaiError("badArgument", f"{verb} requires {', '.join(missing)}")
        for name, value in args.items():
            if not value:
                raise OaiError("badArgument", f"the argument {name!r} is empty")
            syntax = _SYNTAX.get(name)
            if syntax is not None and not syntax.match(value):
                raise OaiError("badArgument", f"{name}: {value!r} is not valid")
        return verb, args

    # -- the document ----------------------------------------------------------------------
    def _document(self, now: datetime, echo: list[tuple[str, str]],
                  parts: Iterator[str | bytes]) -> Iterator[bytes]:
        attributes = "".join(f' {name}="{attr(value)}"' for name, value in echo)
        yield (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<OAI-PMH xmlns="{OAI_NS}" xmlns:xsi="{XSI_NS}" '
            f'xsi:schemaLocation="{OAI_NS} {OAI_SCHEMA}">\n'
            f"<responseDate>{datestamp(now)}</responseDate>\n"
            f"<request{attributes}>{text(self.base_url)}</request>\n"
        ).encode()
        for part in parts:
            yield part.encode() if isinstance(part, str) else part
        yield b"</OAI-PMH>\n"

    # -- verbs -----------------------------------------------------------------------------
    def _identify(self, args: dict[str, str]) -> Iterator[str]:
        earliest = self.export.earliest() or datetime.now(UTC)
        yield (
            "<Identify>"
            f"{_element('repositoryName', self.repository_name)}"
            f"{_element('baseURL', self.base_url)}"
            "<protocolVersion>2.0</protocolVersion>"
            f"{_element('adminEmail', self.admin_email)}"
            f"<earliestDatestamp>{datestamp(earliest)}</earliestDatestamp>"
            "<deletedRecord>persistent</deletedRecord>"
            f"<granularity>{GRANULARITY}</granularity>"
            "</Identify>\n"
        )

    def _list_metadata_formats(self, args: dict[str, str]) -> Iterator[str]:
        if "identifier" in args:
            self._record_row(args["identifier"])  # idDoesNotExist when unknown
        yield "<ListMetadataFormats>"
        for fmt in self.formats.values():
            yield (
                "<metadataFormat>"
                f"{_element('metadataPrefix', fmt.prefix)}"
                f"{_element('schema', fmt.schema)}"
                f"{_element('metadataNamespace', fmt.namespace)}"
                "</metadataFormat>"
            )
        yield "</ListMetadataFormats>\n"

    def _list_sets(self, args: dict[str, str]) -> Iterator[str]:
        if "resumptionToken" in args:
            raise OaiError("badResumptionToken", "this repository issues no resumptionToken "
                                                 "for ListSets")
        with self.db.transaction() as conn:
            sets = OaiRepository(conn).sets()
        if not sets:
            raise OaiError("noSetHierarchy", "this repository has no sets yet (one per "
                                             "organisation with published datasets)")
        yield "<ListSets>"
        for spec, name in sets:
            yield f"<set>{_element('setSpec', spec)}{_element('setName', name)}</set>"
        yield "</ListSets>\n"

    def _get_record(self, args: dict[str, str]) -> Iterator[str | bytes]:
        fmt = self._format(args["metadataPrefix"])
        row = self._record_row(args["identifier"], fmt.prefix == "dcat_ap")
        metadata = self._metadata[fmt.prefix]([row])
        yield "<GetRecord>"
        yield from self._record(row, metadata)
        yield "</GetRecord>\n"

    def _list_identifiers(self, args: dict[str, str]) -> Iterator[str]:
        state = self._state("ListIdentifiers", args)
        page = self._page(state, with_fragments=False)
        yield "<ListIdentifiers>"
        for row in page.rows:
            yield self._header(row)
        yield self._resumption(page)
        yield "</ListIdentifiers>\n"

    def _list_records(self, args: dict[str, str]) -> Iterator[str | bytes]:
        state = self._state("ListRecords", args)
        page = self._page(state, with_fragments=state.prefix == "dcat_ap")
        metadata = self._metadata[state.prefix](page.rows)
        yield "<ListRecords>"
        for row in page.rows:
            yield from self._record(row, metadata)
        yield self._resumption(page)
        yield "</ListRecords>\n"

    # -- helpers ---------------------------------------------------------------------------
    def _format(self, prefix: str) -> MetadataFormat:
        fmt = self.formats.get(prefix)
        if fmt is None:
            raise OaiError("cannotDisseminateFormat", f"metadataPrefix {prefix!r} is not "
                           f"served; use one of {', '.join(self.formats)}")
        return fmt

    def _state(self, verb: str, args: dict[str, str]) -> ListState:
        if "resumptionToken" in args:
            return self.tokens.decode(args["resumptionToken"], verb, self.formats)
        start = parse_instant(args["from"], "from") if "from" in args else None
        end = parse_instant(args["until"], "until") if "until" in args else None
        _bounds(start, end)  # badArgument for mixed granularities or from > until
        fmt = self._format(args["metadataPrefix"])
        return ListState(verb, fmt.prefix, args.get("set"), start, end)

    def _page(self, state: ListState, with_fragments: bool) -> _Page:
        since, until = _bounds(state.start, state.end)
        selection = Selection(since=since, until=until, organisation=state.set,
                              include_deleted=True)
        with self.db.transaction() as conn:
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            repo = ExportRepository(conn)
            rows = repo.page(selection, state.after, self.page_size + 1,
                             "rdfxml" if with_fragments else None)
            total = repo.count(selection) if rows else 0
        if not rows:
            raise OaiError("noRecordsMatch", "no records match the request")
        more = len(rows) > self.page_size
        rows = rows[: self.page_size]
        token: str | None = None
        if more:
            token = self.tokens.encode(ListState(
                state.verb, state.prefix, state.set, state.start, state.end,
                str(rows[-1]["id"]), state.cursor + len(rows)))
        elif state.after is not None:
            token = ""  # the last page of a list that was split
        # the list may have grown or shrunk while it was harvested: the size stays plausible
        total = max(total, state.cursor + len(rows))
        return _Page(rows, total, token, state.cursor)

    @staticmethod
    def _resumption(page: _Page) -> str:
        if page.token is None:
            return ""
        return (f'<resumptionToken completeListSize="{page.total}" cursor="{page.cursor}">'
                f"{text(page.token)}</resumptionToken>")

    def _record_row(self, identifier: str, with_fragment: bool = False) -> dict[str, Any]:
        """The row of the record whose identifier is ``identifier`` (a published one before a
        deleted one when several datasets share an IRI); idDoesNotExist when there is none."""
        found: list[dict[str, Any]] = []
        ids = self.export.ids_for_iri(identifier)
        with self.db.transaction() as conn:
            repo = ExportRepository(conn)
            for dataset_id in ids:
                row = repo.one(dataset_id, "rdfxml" if with_fragment else None)
                if row is not None and (row["status"] == "published"
                                        or row["published_at"] is not None) \
                        and self.export.dataset_iri(row) == identifier:
                    found.append(row)
        if not found:
            raise OaiError("idDoesNotExist", f"no record has the identifier {identifier!r}")
        found.sort(key=lambda r: (r["status"] != "published", str(r["id"])))
        return found[0]

    def _header(self, row: dict[str, Any]) -> str:
        status = ' status="deleted"' if row["status"] != "published" else ""
        return (f"<header{status}>"
                f"{_element('identifier', self.export.dataset_iri(row))}"
                f"<datestamp>{datestamp(row['updated_at'])}</datestamp>"
                f"{_element('setSpec', row['organisation_id'])}"
                "</header>")

    def _record(self, row: dict[str, Any],
                metadata: dict[str, Callable[[], bytes]]) -> Iterator[str | bytes]:
        yield "<record>"
        yield self._header(row)
        render = metadata.get(str(row["id"]))
        if row["status"] == "published" and render is not None:
            yield b"<metadata>" + render() + b"</metadata>"
        yield "</record>\n"

    # -- metadata formats: dataset id -> renderer, loaded in one go per page -----------------
    def _dcat_ap(self, rows: list[dict[str, Any]]) -> dict[str, Callable[[], bytes]]:
        live = [r for r in rows if r["status"] == "published"]
        if not live:
            return {}
        with self.db.transaction() as conn:
            fragments = self.export.fragments(conn, live, "rdfxml")
        head = rdf_open_tag()[:-1] + (
            f' xmlns:xsi="{XSI_NS}" xsi:schemaLocation="{RDF_NS} '
            f'{attr(self.formats["dcat_ap"].schema)}">\n').encode()

        def renderer(fragment: bytes) -> Callable[[], bytes]:
            return lambda: head + clean_xml(fragment) + b"</rdf:RDF>"

        return {str(r["id"]): renderer(f) for r, f in zip(live, fragments, strict=True)}

    def _dublin_core(self, rows: list[dict[str, Any]]) -> dict[str, Callable[[], bytes]]:
        live = [str(r["id"]) for r in rows if r["status"] == "published"]
        if not live:
            return {}
        with self.db.transaction() as conn:
            datasets = DatasetRepository(conn).get_many(live)
            names = OaiRepository(conn).organisation_names(
                sorted({d.organisation_id for d in datasets}))
        iris = {str(r["id"]): self.export.dataset_iri(r) for r in rows}

        def renderer(ds: Dataset) -> Callable[[], bytes]:
            return lambda: dublin_core(ds.with_aggregates(), iris[str(ds.id)],
                                       names.get(ds.organisation_id)).encode()

        return {str(d.id): renderer(d) for d in datasets}


def _chain(first: str | bytes | None, rest: Iterator[str | bytes]) -> Iterator[str | bytes]:
    if first is not None:
        yield first
    yield from rest


# -- oai_dc ---------------------------------------------------------------------------------------


def _lang(tag: str) -> str:
    return f' xml:lang="{attr(tag)}"' if _LANGUAGE_TAG.match(tag) and tag != "und" else ""


def _language(iri: str) -> str:
    """A language as Dublin Core text: the code of an EU authority IRI, else the IRI."""
    return iri[len(_EU_LANGUAGE):].lower() if iri.startswith(_EU_LANGUAGE) else iri


def dublin_core(ds: Dataset, iri: str, publisher: str | None) -> str:
    """``ds`` (aggregates applied) as an ``oai_dc:dc`` element."""
    parts = [f'<oai_dc:dc xmlns:oai_dc="{OAI_DC_NS}" xmlns:dc="{DC_NS}" xmlns:xsi="{XSI_NS}" '
             f'xsi:schemaLocation="{OAI_DC_NS} {OAI_DC_SCHEMA}">']
    parts += [_element("dc:title", value, _lang(tag)) for tag, value in ds.title.items()]
    parts += [_element("dc:description", value, _lang(tag))
              for tag, value in ds.description.items()]
    parts.append(_element("dc:identifier", iri))
    if publisher:
        parts.append(_element("dc:publisher", publisher))
    parts += [_element("dc:subject", keyword) for keyword in ds.keywords]
    parts.append(_element("dc:type", "Dataset"))
    changed = ds.modified or ds.updated_at
    if changed is not None:
        parts.append(_element("dc:date", datestamp(changed)))
    parts += [_element("dc:rights", value) for value in (ds.access_rights, ds.licence) if value]
    parts += [_element("dc:coverage", country) for country in ds.countries]
    languages = ds.fields.get("languages") or []
    parts += [_element("dc:language", _language(str(value)))
              for value in (languages if isinstance(languages, list) else [languages])]
    parts.append("</oai_dc:dc>")
    return "\n".join(parts)
