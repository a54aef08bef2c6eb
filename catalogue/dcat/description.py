"""A dataset description held in plain dicts: the harvester's per-record graph.

The harvest hot path reads every record through the profile, hashes it and sometimes validates
it. An rdflib ``Graph`` pays for contexts, pattern dispatch and store bookkeeping on every
lookup; a description is a few dozen triples that are only ever read by subject. This class
offers the read-only part of the ``Graph`` API that the profile read path, the canonical
N-Triples and the SHACL validator use (``objects``, ``predicates``, ``predicate_objects``,
``subjects``, ``subject_objects``, ``triples``, pattern ``in``, iteration), and
:meth:`to_graph` for anything else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from rdflib import Graph
from rdflib.term import Node

Triple = tuple[Node, Node, Node]
Pattern = tuple[Node | None, Node | None, Node | None]


class Description:
    """A set of triples indexed subject → predicate → objects (insertion-ordered, no
    duplicates)."""

    __slots__ = ("__dict__", "_index", "_size")

    def __init__(self, triples: Iterable[Triple] = ()) -> None:
        self._index: dict[Node, dict[Node, dict[Node, None]]] = {}
        self._size = 0
        for triple in triples:
            self.add(triple)

    # -- building -----------------------------------------------------------------------------
    def add(self, triple: Triple) -> Description:
        s, p, o = triple
        objects = self._index.setdefault(s, {}).setdefault(p, {})
        if o not in objects:
            objects[o] = None
            self._size += 1
        return self

    def to_graph(self) -> Graph:
        graph = Graph(store="SimpleMemory", bind_namespaces="none")
        for triple in self:
            graph.add(triple)
        return graph

    # -- reading ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Triple]:
        for s, by_p in self._index.items():
            for p, objects in by_p.items():
                for o in objects:
                    yield s, p, o

    def __contains__(self, pattern: Pattern) -> bool:
        for _ in self.triples(pattern):
            return True
        return False

    def triples(self, pattern: Pattern) -> Iterator[Triple]:
        s, p, o = pattern
        subjects = [s] if s is not None else list(self._index)
        for subject in subjects:
            by_p = self._index.get(subject)
            if not by_p:
                continue
            predicates = [p] if p is not None else list(by_p)
            for predicate in predicates:
                objects = by_p.get(predicate)
                if not objects:
                    continue
                if o is None:
                    for obj in objects:
                        yield subject, predicate, obj
                elif o in objects:
                    yield subject, predicate, o

    def objects(self, subject: Node | None = None,
                predicate: Node | None = None) -> Iterator[Node]:
        if subject is not None and predicate is not None:
            yield from self._index.get(subject, {}).get(predicate, ())
            return
        for _, _, o in self.triples((subject, predicate, None)):
            yield o

    def predicates(self, subject: Node | None = None,
                   object: Node | None = None) -> Iterator[Node]:
        if subject is not None and object is None:
            yield from self._index.get(subject, {})
            return
        for _, p, _ in self.triples((subject, None, object)):
            yield p

    def subjects(self, predicate: Node | None = None,
                 object: Node | None = None) -> Iterator[Node]:
        for s, _, _ in self.triples((None, predicate, object)):
            yield s

    def predicate_objects(self, subject: Node | None = None) -> Iterator[tuple[Node, Node]]:
        if subject is not None:
            for p, objects in self._index.get(subject, {}).items():
                for o in objects:
                    yield p, o
            return
        for _, p, o in self.triples((None, None, None)):
            yield p, o

    def subject_objects(self, predicate: Node | None = None) -> Iterator[tuple[Node, Node]]:
        for s, _, o in self.triples((None, predicate, None)):
            yield s, o

    def subject_predicates(self, object: Node | None = None
                           ) -> Iterator[tuple[Node, Node]]:
        for s, p, _ in self.triples((None, None, object)):
            yield s, p
