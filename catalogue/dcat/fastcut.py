"""Cutting a page of Turtle/N-Triples into dataset descriptions without an rdflib page graph.

The harvester's hot path. Oxigraph parses; triples are indexed in plain dicts; each dataset's
description (the same closure as :meth:`Profile.description`: its triples and, recursively, those
of blank nodes and described resources that are not datasets or catalogues) is built as a small
:class:`~catalogue.dcat.description.Description` only for that record. The result is identical
to cutting an rdflib page graph (a test checks it on the shared examples and the generated
catalogue).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from rdflib import BNode, Literal
from rdflib.namespace import RDF
from rdflib.term import Node

from catalogue.dcat.description import Description
from catalogue.dcat.formats import _OX_FORMATS, _ox, _OxigraphTerms, _too_many, detect_format
from catalogue.dcat.namespaces import DCAT, _canonical_term
from catalogue.dcat.profiles.base import _CANONICAL, _DESCRIPTION_OF

_DATASET_LINKS = (DCAT.dataset, DCAT.seriesMember)
_TYPE = RDF.type  # a namespace attribute makes a new term at each access: looked up once here
#: what the index notes about a triple, by its predicate (most predicates: nothing)
_ROLE: dict[Node, str] = {RDF.type: "type", DCAT.dataset: "listed", DCAT.seriesMember: "member",
         DCAT.inSeries: "in_series"}
_NOT_DATASETS = {DCAT.Catalog, DCAT.DatasetSeries, DCAT.DataService}
_BOUNDARY = {DCAT.Dataset, DCAT.Catalog}


class PageIndex:
    """A parsed, canonicalised page: triples by subject, with the lookups the cut needs."""

    def __init__(self, triples: list[tuple[Node, Node, Node]]) -> None:
        self.by_subject: dict[Node, list[tuple[Node, Node]]] = defaultdict(list)
        self.types: dict[Node, set[Node]] = defaultdict(set)
        self.listed: set[Node] = set()      # objects of dcat:dataset
        self.members: set[Node] = set()     # objects of dcat:dataset / dcat:seriesMember
        self.in_series: set[Node] = set()
        by_subject, role_of = self.by_subject, _ROLE.get
        for s, p, o in triples:
            by_subject[s].append((p, o))
            role = role_of(p)
            if role is None:
                continue
            if role == "type":
                self.types[s].add(o)
            elif role == "in_series":
                self.in_series.add(s)
            elif not isinstance(o, Literal):  # dcat:dataset or dcat:seriesMember
                self.members.add(o)
                if role == "listed":
                    self.listed.add(o)

    def objects(self, subject: Node | None, predicate: Node) -> Iterator[Node]:
        """The values of ``predicate`` (of ``subject``, or of any subject), as a graph's."""
        pairs = self.by_subject.values() if subject is None else \
            [self.by_subject.get(subject, [])]
        for pair in pairs:
            for p, o in pair:
                if p == predicate:
                    yield o

    def dataset_nodes(self) -> list[Node]:
        nodes = {s for s, types in self.types.items() if DCAT.Dataset in types}
        nodes |= self.in_series
        nodes |= {m for m in self.members if m in self.by_subject}
        datasets = [n for n in nodes if not (self.types.get(n, set()) & _NOT_DATASETS)]
        return sorted(datasets, key=lambda n: (isinstance(n, BNode), str(n)))

    def _is_boundary(self, node: Node) -> bool:
        return bool(self.types.get(node, set()) & _BOUNDARY) or node in self.listed

    def description(self, node: Node) -> Description:
        out = Description()
        # the markers Profile.description sets: parse_with_problems then skips re-cutting and
        # re-canonicalising
        setattr(out, _DESCRIPTION_OF, node)
        setattr(out, _CANONICAL, True)
        add = out.add
        seen = {node}
        pending = [node]
        while pending:
            subject = pending.pop()
            for predicate, value in self.by_subject.get(subject, ()):
                add((subject, predicate, value))
                if predicate == _TYPE or isinstance(value, Literal) or value in seen:
                    continue
                seen.add(value)
                if value in self.by_subject and not self._is_boundary(value):
                    pending.append(value)
        return out


def can_cut(content: bytes, url: str) -> bool:
    return _ox is not None and detect_format(content, None, url) in ("turtle", "nt")


def index_page(content: bytes, url: str, max_triples: int = 2_000_000) -> PageIndex:
    """Parse Turtle/N-Triples with Oxigraph into a canonicalised :class:`PageIndex`.

    Raises ``SyntaxError`` (from Oxigraph) on invalid input, like the parser it replaces.
    """
    assert _ox is not None
    content = content.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark: not content
    fmt = detect_format(content, None, url)
    term = _OxigraphTerms()
    # each distinct term converted once: keyed by Oxigraph's N-Triples text of it (one text per
    # term, and kinds never collide: <iri>, _:blank, "literal"), which hashes at C speed where
    # rdflib literals hash in Python
    converted: dict[str, Node] = {}

    def convert(text: str, t: Any) -> Node:
        found = converted[text] = _canonical_term(term(t))
        return found

    triples: list[tuple[Node, Node, Node]] = []
    append, get = triples.append, converted.get
    quads = _ox.parse(content, format=getattr(_ox.RdfFormat, _OX_FORMATS[fmt]), base_iri=url,
                      rename_blank_nodes=True)
    for count, quad in enumerate(quads, 1):
        if count > max_triples:
            raise _too_many(fmt, max_triples)
        s, p, o = quad.subject, quad.predicate, quad.object
        ks, kp, ko = str(s), str(p), str(o)
        append((get(ks) or convert(ks, s), get(kp) or convert(kp, p), get(ko) or convert(ko, o)))
    return PageIndex(triples)
