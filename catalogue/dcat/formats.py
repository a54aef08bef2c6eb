"""Reading and writing RDF documents: format detection, hardened parsing, serialisation.

Every document is untrusted. Parsing therefore:

- never fetches anything: RDF/XML external entities and DTDs are refused before a parser sees
  the document, and JSON-LD ``@context`` URLs are replaced by the contexts shipped in
  ``ontologies/jsonld/`` (any other remote context is an error);
- refuses entity-expansion attacks (nested or oversized entities, "billion laughs");
- stops at ``max_triples`` triples per document;
- reports failures as :class:`RdfError` naming the format and, when known, line and column.

Turtle, N-Triples, TriG, JSON-LD and RDF/XML are parsed with Oxigraph (``pyoxigraph``, via the
``oxrdflib`` install) when it is available: it is about twice as fast end-to-end and its JSON-LD
1.1 support is more complete (rdflib applies only the first type-scoped context of a node with
several types). A document Oxigraph rejects is retried with rdflib, which is more lenient; if
both reject it, Oxigraph's error (with line and column) is reported.
"""

from __future__ import annotations

import codecs
import copy
import functools
import json
import re
import xml.sax
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from rdflib import BNode, Dataset, Graph, Literal, URIRef
from rdflib.plugins.stores.memory import Memory
from rdflib.term import Node

from catalogue.dcat.namespaces import PREFIXES, bind_prefixes
from catalogue.errors import ValidationError

_ox: Any
try:  # optional accelerator; rdflib is the fallback
    import pyoxigraph as _ox
except ImportError:  # pragma: no cover - depends on the installation
    _ox = None

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_MAX_TRIPLES",
    "FORMATS",
    "FORMAT_NAMES",
    "MEDIA_TYPES",
    "ContextLibrary",
    "RdfError",
    "detect_format",
    "oxigraph_available",
    "parse_rdf",
    "serialise",
    "shipped_contexts",
]

FORMATS = ("turtle", "xml", "json-ld", "nt", "trig")
FORMAT_NAMES = {
    "turtle": "Turtle",
    "xml": "RDF/XML",
    "json-ld": "JSON-LD",
    "nt": "N-Triples",
    "trig": "TriG",
}
MEDIA_TYPES = {
    "turtle": "text/turtle",
    "xml": "application/rdf+xml",
    "json-ld": "application/ld+json",
    "nt": "application/n-triples",
    "trig": "application/trig",
}
DEFAULT_MAX_TRIPLES = 2_000_000
#: base IRI for relative IRIs when the caller gives none (never the process's working folder).
DEFAULT_BASE = "http://localhost/"

_CONTENT_TYPES = {
    "text/turtle": "turtle",
    "application/turtle": "turtle",
    "application/x-turtle": "turtle",
    "text/n3": "turtle",
    "application/rdf+xml": "xml",
    "application/xml": "xml",
    "text/xml": "xml",
    "application/ld+json": "json-ld",
    "application/json": "json-ld",
    "application/n-triples": "nt",
    "text/n-triples": "nt",
    "application/trig": "trig",
    "application/x-trig": "trig",
}
_EXTENSIONS = {
    ".ttl": "turtle",
    ".turtle": "turtle",
    ".n3": "turtle",
    ".rdf": "xml",
    ".xml": "xml",
    ".owl": "xml",
    ".jsonld": "json-ld",
    ".json": "json-ld",
    ".nt": "nt",
    ".ntriples": "nt",
    ".trig": "trig",
}
_SNIFF_BYTES = 65536
_MAX_MESSAGE = 300

# RDF/XML entity rules: only internal, flat, short entities (namespace shorthands) are expanded.
_MAX_ENTITY_VALUE = 2048
_MAX_ENTITIES = 256
_MAX_ENTITY_EXPANSION = 10 * 1024 * 1024  # characters added by expansion, whole document
_MAX_CONTEXT_DEPTH = 8


class RdfError(ValidationError):
    """A document that is not valid RDF, or that we refuse to read (unsafe, too large)."""

    code = "invalid_rdf"

    def __init__(
        self,
        message: str | None = None,
        *,
        fmt: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        self.format = fmt
        self.line = line
        self.column = column
        details = {
            key: value
            for key, value in (("format", fmt), ("line", line), ("column", column))
            if value is not None
        }
        super().__init__(message, details=details or None)

    def default_message(self) -> str:
        return "the document is not valid RDF"


class _SyntaxRdfError(RdfError):
    """The document does not parse in the format tried (as opposed to a refusal)."""


class _TooManyTriples(Exception):
    pass


def oxigraph_available() -> bool:
    """Whether the Oxigraph parsers can be used."""
    return _ox is not None


# -- format detection ---------------------------------------------------------------------------


def _from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    return _CONTENT_TYPES.get(media)


def _from_filename(filename: str | None) -> str | None:
    if not filename:
        return None
    path = urlsplit(filename).path if "://" in filename else filename
    suffix = Path(path).suffix.lower()
    return _EXTENSIONS.get(suffix)


_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _bom_encoding(content: bytes) -> str | None:
    for bom, encoding in _BOMS:
        if content.startswith(bom):
            return encoding
    return None


def _head_text(content: bytes) -> tuple[str, bool]:
    """The first bytes as text (for sniffing) and whether the document was cut."""
    head = content[:_SNIFF_BYTES]
    encoding = _bom_encoding(head) or "utf-8"
    return head.decode(encoding, "replace"), len(content) > _SNIFF_BYTES


_XML_START = re.compile(
    r"<\?xml|<!DOCTYPE|<!--|<[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?\s+[\w.\-:]+\s*="
    r"|<[A-Za-z_][\w.\-]*:[A-Za-z_][\w.\-]*\s*/?>"
)
_JSON_ARRAY = re.compile(r"\[\s*[{\]]")
_TURTLE_TOKENS = re.compile(
    r'"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'(?:[^\'\\\n]|\\.)*\''
    r'|<[^<>"{}|^`\\\s]*>|#[^\n]*'
)
_NT_TERM = r'(?:<[^>\s]*>|_:\S+|"(?:[^"\\]|\\.)*"(?:@[A-Za-z0-9\-]+|\^\^<[^>\s]*>)?)'
_NT_LINE = re.compile(rf"^(?:<[^>\s]*>|_:\S+)\s*<[^>\s]*>\s*{_NT_TERM}\s*\.\s*(?:#.*)?$")


def _looks_like_ntriples(text: str, truncated: bool) -> bool:
    lines = text.splitlines()
    if truncated and lines:
        lines = lines[:-1]
    seen = 0
    for raw in lines[:200]:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _NT_LINE.match(line):
            return False
        seen += 1
    return seen > 0


def _sniff(content: bytes) -> str:
    text, truncated = _head_text(content)
    start = text.lstrip()
    if not start:
        return "turtle"
    if _XML_START.match(start):
        return "xml"
    if start[0] == "{" or _JSON_ARRAY.match(start):
        return "json-ld"
    if "{" in _TURTLE_TOKENS.sub(" ", start):
        return "trig"
    if _looks_like_ntriples(start, truncated):
        return "nt"
    return "turtle"


def detect_format(
    content: bytes, content_type: str | None = None, filename: str | None = None
) -> str:
    """One of :data:`FORMATS`: from the content type, else the file extension, else the content.

    Generic content types (``text/plain``, ``application/octet-stream``) are ignored. A document
    declared as Turtle that contains named-graph blocks is TriG (TriG is a superset of Turtle).
    """
    declared = _from_content_type(content_type) or _from_filename(filename)
    if declared is None:
        return _sniff(content)
    if declared == "turtle" and _sniff(content) == "trig":
        return "trig"
    return declared


# -- safe RDF/XML -------------------------------------------------------------------------------

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_XML_ENCODING = re.compile(rb"^\s*<\?xml[^>]*?encoding\s*=\s*[\"']([A-Za-z0-9._\-]+)[\"']")
_COMMENT_OR_CDATA = re.compile(r"<!--.*?-->|<!\[CDATA\[.*?\]\]>", re.S)
_DOCTYPE_HEAD = re.compile(r"<!DOCTYPE\s+[^\s\[>]+\s*")
_EXTERNAL_ID = re.compile(r"(?:SYSTEM|PUBLIC)\b[^\[>]*", re.S)
_SUBSET_DECLARATION = re.compile(
    r"\s+|<!--.*?-->|<!ENTITY\s+(?P<pe>%\s+)?(?P<name>[^\s%&;<>\"']+)\s+"
    r"(?:(?P<q>[\"'])(?P<value>.*?)(?P=q)|(?P<external>(?:SYSTEM|PUBLIC)\b[^>]*))\s*>",
    re.S,
)
_CHAR_REFERENCE = re.compile(r"&#(?:[0-9]+|x[0-9A-Fa-f]+);")


def _xml_error(message: str) -> RdfError:
    return RdfError(f"refused RDF/XML: {message}", fmt="xml")


def _decode_xml(content: bytes) -> str:
    encoding = _bom_encoding(content)
    if encoding is None:
        if content.startswith(b"<\x00?\x00"):
            encoding = "utf-16-le"
        elif content.startswith(b"\x00<\x00?"):
            encoding = "utf-16-be"
        else:
            match = _XML_ENCODING.match(content[:512])
            encoding = match.group(1).decode("ascii") if match else "utf-8"
    try:
        codecs.lookup(encoding)
        return content.decode(encoding)
    except LookupError:
        raise _SyntaxRdfError(
            f"invalid RDF/XML: unknown encoding {encoding!r}", fmt="xml"
        ) from None
    except UnicodeDecodeError as exc:
        raise _SyntaxRdfError(
            f"invalid RDF/XML: not valid {encoding} at byte {exc.start}", fmt="xml"
        ) from None


def _masked(text: str) -> str:
    """``text`` with comments and CDATA sections blanked (same length, offsets kept)."""
    return _COMMENT_OR_CDATA.sub(lambda m: " " * len(m.group(0)), text)


def _read_internal_subset(text: str, pos: int) -> tuple[dict[str, str], int]:
    """Entities declared in the internal subset starting at ``pos``; return them and the end."""
    entities: dict[str, str] = {}
    while True:
        if pos >= len(text):
            raise _xml_error("the DOCTYPE internal subset is not closed")
        if text[pos] == "]":
            return entities, pos + 1
        match = _SUBSET_DECLARATION.match(text, pos)
        if match is None:
            snippet = text[pos : pos + 40].split(">")[0]
            raise _xml_error(
                f"unsupported DOCTYPE declaration {snippet!r}: only internal entity "
                "declarations are accepted"
            )
        name = match.group("name")
        if name is not None:
            if match.group("pe"):
                raise _xml_error(f"parameter entity '%{name}' is not allowed")
            if match.group("external") is not None:
                raise _xml_error(
                    f"entity '{name}' refers to an external resource "
                    f"({match.group('external').strip()[:80]}); external entities are never "
                    "loaded"
                )
            value = match.group("value")
            if "&" in _CHAR_REFERENCE.sub("", value) or "%" in value or "<" in value:
                raise _xml_error(
                    f"entity '{name}' refers to other entities or markup; nested entity "
                    "expansion (an entity-expansion attack such as 'billion laughs') is refused"
                )
            if len(value) > _MAX_ENTITY_VALUE:
                raise _xml_error(
                    f"entity '{name}' is longer than {_MAX_ENTITY_VALUE} characters"
                )
            entities.setdefault(name, value)
            if len(entities) > _MAX_ENTITIES:
                raise _xml_error(f"more than {_MAX_ENTITIES} entity declarations")
        pos = match.end()


def _expand_entities(body: str, entities: dict[str, str]) -> str:
    masked = _masked(body)
    names = "|".join(re.escape(name) for name in entities)
    reference = re.compile(rf"&({names});")
    growth = sum(len(entities[m.group(1)]) for m in reference.finditer(masked))
    if growth > _MAX_ENTITY_EXPANSION:
        raise _xml_error(
            f"entity expansion would add {growth:,} characters (limit "
            f"{_MAX_ENTITY_EXPANSION:,}); entity-expansion attacks are refused"
        )
    escaped = {
        name: value.replace('"', "&quot;").replace("'", "&apos;")
        for name, value in entities.items()
    }
    out: list[str] = []
    last = 0
    for protected in _COMMENT_OR_CDATA.finditer(body):
        out.append(reference.sub(lambda m: escaped[m.group(1)], body[last : protected.start()]))
        out.append(protected.group(0))
        last = protected.end()
    out.append(reference.sub(lambda m: escaped[m.group(1)], body[last:]))
    return "".join(out)


def harden_xml(content: bytes) -> bytes:
    """RDF/XML made safe to hand to any XML parser: UTF-8, no XML declaration, no DOCTYPE.

    A DOCTYPE is accepted only if it declares nothing but internal, flat entities (the
    namespace shorthands some RDF/XML writers emit); they are expanded here. External DTDs,
    external or parameter entities, nested entities and oversized expansions are refused.
    """
    text = _XML_DECLARATION.sub("", _decode_xml(content), count=1)
    masked = _masked(text)
    doctype = masked.find("<!DOCTYPE")
    if doctype < 0:
        if re.search(r"<!(?:DOCTYPE|ENTITY)", masked, re.I):
            raise _xml_error("misplaced DOCTYPE or ENTITY declaration")
        return text.encode("utf-8")
    if re.search(r"<[A-Za-z_]", masked[:doctype]):
        raise _xml_error("the DOCTYPE must come before the root element")
    head = _DOCTYPE_HEAD.match(text, doctype)
    if head is None:
        raise _xml_error("malformed DOCTYPE")
    pos = head.end()
    external = _EXTERNAL_ID.match(text, pos)
    if external is not None:
        raise _xml_error(
            f"the DOCTYPE refers to an external DTD ({external.group(0).strip()[:80]}); "
            "external DTDs and entities are never loaded"
        )
    entities: dict[str, str] = {}
    if pos < len(text) and text[pos] == "[":
        entities, pos = _read_internal_subset(text, pos + 1)
    closing = re.compile(r"\s*>").match(text, pos)
    if closing is None:
        raise _xml_error("malformed DOCTYPE")
    body = text[closing.end() :]
    if re.search(r"<!(?:DOCTYPE|ENTITY)", _masked(body), re.I):
        raise _xml_error("a second DOCTYPE or ENTITY declaration")
    if entities:
        body = _expand_entities(body, entities)
    return (text[:doctype] + body).encode("utf-8")


# -- JSON-LD contexts ---------------------------------------------------------------------------


def _context_key(url: str) -> str:
    url = url.split("#", 1)[0].strip()
    scheme, sep, rest = url.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        return "https://" + rest
    return url


class ContextLibrary:
    """JSON-LD contexts shipped with the catalogue, by their official URLs."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        index = json.loads((directory / "contexts.json").read_text(encoding="utf-8"))
        self._files: dict[str, Path] = {}
        for entry in index["contexts"]:
            for url in entry["urls"]:
                self._files[_context_key(url)] = directory / entry["file"]

    @property
    def urls(self) -> list[str]:
        return sorted(self._files)

    def get(self, url: str) -> Any | None:
        """The ``@context`` value of the context published at ``url``, or None."""
        path = self._files.get(_context_key(url))
        if path is None:
            return None
        return copy.deepcopy(_load_context_file(path))


@functools.lru_cache(maxsize=16)
def _load_context_file(path: Path) -> Any:
    data = json.loads(path.read_text(encoding="utf-8"))
    context = data.get("@context") if isinstance(data, dict) else None
    return _without_inconsistent_terms(context) if isinstance(context, dict) else context


def _without_inconsistent_terms(context: dict[str, Any]) -> dict[str, Any]:
    """``context`` without terms that JSON-LD 1.1 rejects as inconsistent IRI mappings.

    The DCAT-AP 3 context defines terms such as ``Xsd:decimal`` (an absolute IRI with the
    scheme ``Xsd``) mapped to another IRI; strict processors (Oxigraph) then refuse the whole
    context. Such terms can never be used validly, so dropping them loses nothing.
    """
    kept: dict[str, Any] = {}
    for term, definition in context.items():
        prefix, colon, _ = term.partition(":")
        if colon and not term.startswith("@") and prefix not in context:
            target = definition.get("@id") if isinstance(definition, dict) else definition
            if target != term:
                continue
        kept[term] = definition
    return kept


@functools.lru_cache(maxsize=4)
def shipped_contexts(directory: Path | None = None) -> ContextLibrary:
    """The library of ``ontologies/jsonld/`` (or of ``directory``)."""
    if directory is None:
        from catalogue.resources import resource_dir

        directory = resource_dir("ontologies") / "jsonld"
    return ContextLibrary(directory)


def _single_context(context: Any) -> dict[str, Any] | None:
    """A resolved top-level context as one dict, when it is a dict or a list of dicts."""
    if isinstance(context, dict):
        return context
    if isinstance(context, list) and all(isinstance(item, dict) for item in context):
        merged: dict[str, Any] = {}
        for item in context:
            merged.update(item)
        return merged
    return None


class _ContextResolver:
    """Replaces every remote ``@context``/``@import`` URL of a document by a shipped context."""

    def __init__(self, library: ContextLibrary, base: str) -> None:
        self.library = library
        self.base = base

    def document(self, node: Any) -> Any:
        """The document with every context resolved (see :meth:`_merge_scoped_types`)."""
        if isinstance(node, dict) and "@context" in node:
            top = self.context(node["@context"], 0)
            merged = _single_context(top)
            rest = {key: value for key, value in node.items() if key != "@context"}
            body = self._walk(rest, merged)
            if merged is not None:
                top = merged
            return {"@context": top, **body}
        return self._walk(node, None)

    def _walk(self, node: Any, top: dict[str, Any] | None) -> Any:
        if isinstance(node, list):
            return [self._walk(item, top) for item in node]
        if not isinstance(node, dict):
            return node
        if "@context" in node:  # an embedded context: leave its subtree as the parser sees it
            top = None
        out = {
            key: self.context(value, 0) if key == "@context" else self._walk(value, top)
            for key, value in node.items()
        }
        if top is not None:
            self._merge_scoped_types(out, top)
        return out

    @staticmethod
    def _merge_scoped_types(node: dict[str, Any], top: dict[str, Any]) -> None:
        """Apply all type-scoped contexts of a node with several types, not just one.

        JSON-LD 1.1 applies the scoped contexts of every type of a node, in lexicographic
        order. rdflib applies only the first and Oxigraph only the last (DCAT-AP 3 examples
        type series members as both ``Dataset`` and ``DatasetMemberOfADatasetSeries``). A
        synthetic term carrying the merged contexts replaces those types; the other types are
        written as their IRIs, which carry no scoped context.
        """
        types = node.get("@type")
        if not isinstance(types, list) or len(types) < 2:
            return
        scoped = sorted(
            t
            for t in types
            if isinstance(t, str)
            and isinstance(top.get(t), dict)
            and isinstance(top[t].get("@context"), dict)
            and isinstance(top[t].get("@id"), str)
        )
        if len(scoped) < 2:
            return
        merged: dict[str, Any] = {}
        for name in scoped:
            merged.update(top[name]["@context"])
        synthetic = "MergedTypes_" + "_".join(scoped)
        top.setdefault(synthetic, {"@id": top[scoped[0]]["@id"], "@context": merged})
        node["@type"] = [
            synthetic,
            *(top[name]["@id"] for name in scoped[1:]),
            *(t for t in types if t not in scoped),
        ]

    def _remote(self, reference: str, depth: int) -> Any:
        url = urljoin(self.base, reference)
        found = self.library.get(url)
        if found is None:
            raise RdfError(
                f"JSON-LD @context {reference!r} is a remote context and remote contexts are "
                "never fetched; only the contexts shipped in ontologies/jsonld/ can be "
                "referenced (put the context inline instead)",
                fmt="json-ld",
            )
        return self.context(found, depth + 1)

    def context(self, value: Any, depth: int) -> Any:
        if depth > _MAX_CONTEXT_DEPTH:
            raise RdfError("invalid JSON-LD: @context nested too deeply", fmt="json-ld")
        if isinstance(value, str):
            return self._remote(value, depth)
        if isinstance(value, list):
            flat: list[Any] = []
            for item in value:
                resolved = self.context(item, depth)
                flat.extend(resolved if isinstance(resolved, list) else [resolved])
            return flat
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            imported = value.get("@import")
            if isinstance(imported, str):
                resolved = self._remote(imported, depth)
                if not isinstance(resolved, dict):
                    raise RdfError(
                        f"invalid JSON-LD: @import {imported!r} is not a single context",
                        fmt="json-ld",
                    )
                out.update(resolved)
            for key, item in value.items():
                if key == "@import":
                    continue
                if isinstance(item, dict):
                    out[key] = {
                        k: self.context(v, depth + 1) if k == "@context" else v
                        for k, v in item.items()
                    }
                else:
                    out[key] = item
            return out
        return value


def _load_jsonld(content: bytes, base: str) -> Any:
    try:
        text = content.decode(_bom_encoding(content) or "utf-8")
    except UnicodeDecodeError as exc:
        raise _SyntaxRdfError(
            f"invalid JSON-LD: not valid UTF-8 at byte {exc.start}", fmt="json-ld"
        ) from None
    try:
        document = json.loads(text)
        return _ContextResolver(shipped_contexts(), base).document(document)
    except json.JSONDecodeError as exc:
        raise _SyntaxRdfError(
            f"invalid JSON-LD: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            fmt="json-ld",
            line=exc.lineno,
            column=exc.colno,
        ) from None
    except RecursionError:
        raise RdfError(
            "invalid JSON-LD: the document is nested too deeply", fmt="json-ld"
        ) from None


# -- parsing ------------------------------------------------------------------------------------


class _CappedMemory(Memory):
    """rdflib's memory store, refusing more than ``limit`` additions while parsing."""

    def __init__(self, limit: int | None) -> None:
        super().__init__()
        self.limit = limit
        self.added = 0

    def add(self, triple: Any, context: Any, quoted: bool = False) -> None:
        self.added += 1
        if self.limit is not None and self.added > self.limit:
            raise _TooManyTriples
        super().add(triple, context, quoted)


def _too_many(fmt: str, limit: int) -> RdfError:
    return RdfError(
        f"the {FORMAT_NAMES[fmt]} document has more than {limit:,} triples, the limit per "
        "document; split it into smaller documents or pages",
        fmt=fmt,
    )


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


class _OxigraphTerms:
    """Converts Oxigraph terms to rdflib terms, sharing repeated IRIs and literals."""

    def __init__(self) -> None:
        self._iris: dict[str, URIRef] = {}
        self._literals: dict[tuple[str, str | None, str | None], Literal] = {}
        self._xsd_string = "http://www.w3.org/2001/XMLSchema#string"

    def __call__(self, term: Any) -> Node:
        assert _ox is not None
        if isinstance(term, _ox.NamedNode):
            value = term.value
            iri = self._iris.get(value)
            if iri is None:
                iri = self._iris[value] = URIRef(value)
            return iri
        if isinstance(term, _ox.BlankNode):
            return BNode(term.value)
        if isinstance(term, _ox.Literal):
            language = term.language
            datatype = None if language else term.datatype.value
            if datatype == self._xsd_string:
                datatype = None
            key = (term.value, language, datatype)
            literal = self._literals.get(key)
            if literal is None:
                if len(self._literals) > 100_000:
                    self._literals.clear()
                literal = self._literals[key] = Literal(
                    term.value,
                    lang=language,
                    datatype=URIRef(datatype) if datatype else None,
                )
            return literal
        raise RdfError("RDF 1.2 triple terms are not supported")


_OX_FORMATS = {
    "turtle": "TURTLE",
    "nt": "N_TRIPLES",
    "trig": "TRIG",
    "json-ld": "JSON_LD",
    "xml": "RDF_XML",
}


def _parse_oxigraph(data: bytes, fmt: str, base: str, max_triples: int) -> Graph:
    assert _ox is not None
    graph = Graph()
    add = graph.store.add
    term = _OxigraphTerms()
    count = 0
    quads = _ox.parse(
        data,
        format=getattr(_ox.RdfFormat, _OX_FORMATS[fmt]),
        base_iri=base,
        rename_blank_nodes=True,
    )
    for quad in quads:
        count += 1
        if count > max_triples:
            raise _too_many(fmt, max_triples)
        add((term(quad.subject), term(quad.predicate), term(quad.object)), graph, quoted=False)
    return graph


def _parse_rdflib(data: bytes | Any, fmt: str, base: str, max_triples: int) -> Graph:
    store = _CappedMemory(max_triples)
    try:
        if fmt == "trig":
            dataset = Dataset(store=store)
            dataset.parse(data=data, format="trig", publicID=base)
            graph = Graph()
            for s, p, o, _ in dataset.quads((None, None, None, None)):
                graph.add((s, p, o))
            return graph
        graph = Graph(store=store)
        if fmt == "json-ld":
            from rdflib.plugins.parsers.jsonld import to_rdf

            to_rdf(data, graph, base=base)
        else:
            graph.parse(data=data, format=fmt, publicID=base)
        store.limit = None
        return graph
    except _TooManyTriples:
        raise _too_many(fmt, max_triples) from None


def _oxigraph_error(exc: Exception, fmt: str) -> RdfError:
    line = getattr(exc, "lineno", None)
    column = getattr(exc, "offset", None)
    message = getattr(exc, "msg", None) or str(exc)
    return _SyntaxRdfError(
        f"invalid {FORMAT_NAMES[fmt]}: {_short(message)}",
        fmt=fmt,
        line=line if isinstance(line, int) else None,
        column=column if isinstance(column, int) else None,
    )


def _rdflib_error(exc: Exception, fmt: str) -> RdfError:
    name = FORMAT_NAMES[fmt]
    if isinstance(exc, xml.sax.SAXParseException):
        line, column = exc.getLineNumber(), exc.getColumnNumber()
        return _SyntaxRdfError(
            f"invalid {name} at line {line}, column {column}: {_short(exc.getMessage())}",
            fmt=fmt,
            line=line,
            column=column,
        )
    lines = getattr(exc, "lines", None)
    why = getattr(exc, "_why", None)
    if isinstance(lines, int) and why is not None:
        return _SyntaxRdfError(
            f"invalid {name} at line {lines + 1}: {_short(str(why))}", fmt=fmt, line=lines + 1
        )
    return _SyntaxRdfError(
        f"invalid {name}: {_short(str(exc) or type(exc).__name__)}", fmt=fmt
    )


def _prepare(content: bytes, fmt: str, base: str) -> bytes | Any:
    """The document as the parsers should see it (JSON-LD: a JSON value, else UTF-8 bytes)."""
    if fmt == "xml":
        return harden_xml(content)
    if fmt == "json-ld":
        return _load_jsonld(content, base)
    encoding = _bom_encoding(content)
    if encoding is None:
        return content
    try:
        return content.decode(encoding).encode("utf-8")
    except UnicodeDecodeError as exc:
        raise _SyntaxRdfError(
            f"invalid {FORMAT_NAMES[fmt]}: not valid {encoding} at byte {exc.start}", fmt=fmt
        ) from None


def _engines(engine: str) -> Iterator[str]:
    if engine not in ("auto", "oxigraph", "rdflib"):
        raise ValueError(f"unknown RDF parsing engine {engine!r}")
    if engine in ("auto", "oxigraph") and _ox is not None:
        yield "oxigraph"
    if engine in ("auto", "rdflib") or _ox is None:
        yield "rdflib"


def _parse_as(prepared: bytes | Any, fmt: str, base: str, max_triples: int, engine: str) -> Graph:
    first_error: RdfError | None = None
    for name in _engines(engine):
        try:
            if name == "oxigraph":
                data = prepared if isinstance(prepared, bytes) else json.dumps(prepared).encode()
                return _parse_oxigraph(data, fmt, base, max_triples)
            return _parse_rdflib(prepared, fmt, base, max_triples)
        except RdfError:
            raise
        except RecursionError:
            raise RdfError(
                f"invalid {FORMAT_NAMES[fmt]}: the document is nested too deeply", fmt=fmt
            ) from None
        except Exception as exc:  # parser errors come in many classes; all mean "invalid"
            error = _oxigraph_error(exc, fmt) if name == "oxigraph" else _rdflib_error(exc, fmt)
            first_error = first_error or error
    assert first_error is not None
    raise first_error


def parse_rdf(
    content: bytes,
    *,
    content_type: str | None = None,
    filename: str | None = None,
    base: str | None = None,
    max_triples: int = DEFAULT_MAX_TRIPLES,
    engine: str = "auto",
) -> Graph:
    """Parse an untrusted RDF document into one graph (named graphs are merged).

    ``base`` resolves relative IRIs (default :data:`DEFAULT_BASE`). ``engine`` is ``"auto"``
    (Oxigraph, then rdflib), ``"oxigraph"`` or ``"rdflib"``. Raises :class:`RdfError`.
    """
    base = base or DEFAULT_BASE
    fmt = detect_format(content, content_type, filename)
    try:
        return _parse_as(_prepare(content, fmt, base), fmt, base, max_triples, engine)
    except _SyntaxRdfError as error:
        # A mislabelled document (a JSON body served as text/turtle...) is read as what it is.
        # Refusals (unsafe, too large) are never retried.
        sniffed = _sniff(content)
        if sniffed == fmt:
            raise
        try:
            return _parse_as(_prepare(content, sniffed, base), sniffed, base, max_triples, engine)
        except _SyntaxRdfError:
            raise error from None


# -- serialising --------------------------------------------------------------------------------


def serialise(graph: Graph, fmt: str) -> bytes:
    """``graph`` in one of :data:`FORMATS`, UTF-8, with the canonical prefixes bound."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown RDF format {fmt!r}; expected one of {', '.join(FORMATS)}")
    bind_prefixes(graph)
    if fmt == "json-ld":
        return graph.serialize(
            format="json-ld", context=dict(PREFIXES), auto_compact=True, encoding="utf-8"
        )
    if fmt == "trig":
        dataset = Dataset()
        bind_prefixes(dataset)
        for triple in graph:
            dataset.add(triple)
        return dataset.serialize(format="trig", encoding="utf-8")
    return graph.serialize(format=fmt, encoding="utf-8")
