"""The profile contract and its table-driven implementation.

A profile translates between DCAT documents and :class:`~catalogue.model.dataset.Dataset`:

- parse side: :meth:`Profile.dataset_nodes` finds the datasets of a document,
  :meth:`Profile.description` cuts out one dataset's complete description, and
  :meth:`Profile.parse_with_problems` reads it into a ``Dataset`` (structured attributes, a
  JSON ``fields`` dict for everything else, and the description itself as N-Triples);
- serialise side: :meth:`Profile.serialise` writes a ``Dataset`` back as a graph, starting from
  its stored description when there is one, so that nothing is lost.

What is read and written is declared in mapping tables of ``(field, predicate, kind)`` rows
(:mod:`.kinds`) and facets (:mod:`.facets`); subclasses extend the tables of their parent
(DCAT-AP 3 → HealthDCAT-AP → EUCAIM).
"""

from __future__ import annotations

import abc
import copy
import hashlib
from collections.abc import Mapping
from dataclasses import asdict, fields
from itertools import zip_longest
from typing import Any, ClassVar, TypeGuard, cast
from urllib.parse import quote

from rdflib import BNode, Graph, Literal, URIRef
from rdflib.compare import to_canonical_graph
from rdflib.plugins.serializers.nt import _quoteLiteral
from rdflib.term import Node

from catalogue.dcat.description import Description
from catalogue.dcat.namespaces import DCAT, DCT, RDF, bind_prefixes, canonicalise_graph
from catalogue.dcat.profiles.facets import Facet
from catalogue.dcat.profiles.kinds import (
    ReadContext,
    Row,
    WriteContext,
    looks_like_iri,
    sort_key,
)
from catalogue.model.dataset import Dataset, Distribution

_CANONICAL = "_catalogue_canonical"
_DESCRIPTION_OF = "_catalogue_description_of"
_DATASET_ATTRIBUTES = frozenset(f.name for f in fields(Dataset))


def _is_blank(term: Node) -> TypeGuard[BNode]:
    """``isinstance(term, BNode)``, answered by the exact class for rdflib's own three term
    classes (isinstance through rdflib's ABC is the slow part of hashing a record)."""
    cls = term.__class__
    if cls is BNode:
        return True
    if cls is URIRef or cls is Literal:
        return False
    return isinstance(term, BNode)


def _content_labels(graph: Graph | Description,
                    blanks: set[BNode] | None = None) -> dict[BNode, str] | None:
    """Blank-node labels hashed from their content, or None when that is not canonical.

    Descriptions are trees of blank nodes almost always; hashing each blank node's triples
    (recursively) labels them canonically at a fraction of the cost of the general algorithm.
    Cycles through blank nodes, or two blank nodes with the same content, fall back to it.
    ``blanks``: the graph's blank nodes, when the caller has them.
    """
    labels: dict[BNode, str] = {}
    visiting: set[BNode] = set()

    def label(node: BNode) -> str | None:
        if node in labels:
            return labels[node]
        if node in visiting:
            return None
        visiting.add(node)
        parts = []
        for predicate, value in graph.predicate_objects(node):
            if _is_blank(value):
                inner = label(value)
                if inner is None:
                    return None
                parts.append(f"{predicate.n3()} _:{inner}")
            else:
                parts.append(f"{predicate.n3()} {value.n3()}")
        visiting.discard(node)
        labels[node] = "b" + hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()[:32]
        return labels[node]

    if blanks is None:
        blanks = {t for triple in graph for t in triple if _is_blank(t)}
    for node in blanks:
        if label(node) is None:
            return None
    if len(set(labels.values())) != len(labels):
        return None
    return labels


_IRI_TEXT: dict[Node, str] = {}


def _nt_term(term: Node) -> str:
    """One term as N-Triples (what rdflib's N-Triples serializer writes), IRIs memoised."""
    cls = term.__class__
    if cls is URIRef:
        text = _IRI_TEXT.get(term)
        if text is None:
            if len(_IRI_TEXT) > 200_000:
                _IRI_TEXT.clear()
            text = _IRI_TEXT[term] = term.n3()
        return text
    if cls is Literal or isinstance(term, Literal):
        return str(_quoteLiteral(cast(Literal, term)))
    return str(term.n3())


def canonical_ntriples(graph: Graph | Description) -> str:
    """``graph`` as sorted N-Triples lines with canonical blank-node labels (stable hashes)."""
    triples = list(graph)
    blanks = {t for triple in triples for t in triple if _is_blank(t)}
    labels: dict[BNode, str] | None = {}
    if blanks:
        labels = _content_labels(graph, blanks)
        if labels is None:
            canonical = Graph(bind_namespaces="none")
            source = graph.to_graph() if isinstance(graph, Description) else graph
            for triple in to_canonical_graph(source):
                canonical.add(triple)
            text = canonical.serialize(format="nt", encoding="utf-8").decode("utf-8")
            lines = sorted({line for line in text.splitlines() if line.strip()})
            return "\n".join(lines) + ("\n" if lines else "")
    # rows written directly (no intermediate graph, no serializer): this runs once per record
    rows: set[str] = set()
    add, iri_text, nt = rows.add, _IRI_TEXT.get, _nt_term
    for s, p, o in triples:
        if labels:
            if _is_blank(s):
                s = BNode(labels[s])
            if _is_blank(o):
                o = BNode(labels[o])
        # subjects and predicates are IRIs almost always: their memoised text first
        add(f"{iri_text(s) or nt(s)} {iri_text(p) or nt(p)} {nt(o)} .")
    lines = sorted(rows)
    return "\n".join(lines) + ("\n" if lines else "")


def graph_from_ntriples(text: str) -> Graph:
    from catalogue.dcat.formats import parse_rdf

    return parse_rdf(text.encode("utf-8"), content_type="application/n-triples")


def _empty(value: Any) -> Any:
    return None if value is None or value == [] or value == {} else value


class Profile(abc.ABC):
    """A DCAT application profile: documents ↔ :class:`Dataset` records.

    Instances are cheap and hold no state but :attr:`last_problems`; create one per use
    (``get_profile``) or share one per thread.
    """

    #: rows whose field is a ``Dataset`` attribute
    dataset_attribute_rows: ClassVar[tuple[Row, ...]] = ()
    #: rows whose field is a key of ``Dataset.fields`` (JSON values)
    dataset_field_rows: ClassVar[tuple[Row, ...]] = ()
    #: rows whose field is a ``Distribution`` attribute
    distribution_attribute_rows: ClassVar[tuple[Row, ...]] = ()
    #: rows for ``Dataset.fields["distributions"][i]`` (aligned with ``Dataset.distributions``)
    distribution_field_rows: ClassVar[tuple[Row, ...]] = ()
    #: nested resources (agents, contact points...) read by ``Nested`` kinds, by name
    structures: ClassVar[Mapping[str, tuple[Row, ...]]] = {}
    #: rdf:type written for a nested resource that has no ``types`` of its own
    structure_types: ClassVar[Mapping[str, URIRef]] = {}
    #: attributes derived from ``fields`` entries
    facets: ClassVar[tuple[Facet, ...]] = ()
    #: resources of these classes are never part of another dataset's description
    boundary_classes: ClassVar[frozenset[URIRef]] = frozenset({DCAT.Dataset, DCAT.Catalog})

    def __init__(self) -> None:
        self.last_problems: list[str] = []

    @property
    @abc.abstractmethod
    def name(self) -> str:
        """Short name of the profile (``get_profile`` key)."""

    # -- documents ----------------------------------------------------------------------------

    def canonicalise(self, graph: Graph) -> Graph:
        """Rewrite namespace aliases to their canonical namespaces (in place); return ``graph``.

        The graph is marked as canonical, so that reading descriptions cut from it does not
        scan them again; add no alias triples to it afterwards.
        """
        canonicalise_graph(graph)
        setattr(graph, _CANONICAL, True)
        return graph

    def _is_catalog_like(self, graph: Graph, node: Node) -> bool:
        types = set(graph.objects(node, RDF.type))
        return bool(types & {DCAT.Catalog, DCAT.DatasetSeries, DCAT.DataService})

    def dataset_nodes(self, graph: Graph) -> list[Node]:
        """Every dataset described in ``graph``: typed ``dcat:Dataset``, members of a series
        (``dcat:inSeries``), or described resources listed by ``dcat:dataset`` or
        ``dcat:seriesMember``. Catalogues, series and data services are not datasets here.
        """
        nodes: set[Node] = set(graph.subjects(RDF.type, DCAT.Dataset))
        nodes.update(graph.subjects(DCAT.inSeries, None))
        for predicate in (DCAT.dataset, DCAT.seriesMember):
            for member in graph.objects(None, predicate):
                if not isinstance(member, Literal) and (member, None, None) in graph:
                    nodes.add(member)
        datasets = [n for n in nodes if not self._is_catalog_like(graph, n)]
        return sorted(datasets, key=lambda n: (isinstance(n, BNode), str(n)))

    def _is_boundary(self, graph: Graph, node: Node) -> bool:
        if any(t in self.boundary_classes for t in graph.objects(node, RDF.type)):
            return True
        return (None, DCAT.dataset, node) in graph

    def description(self, graph: Graph, node: Node) -> Graph:
        """The complete description of dataset ``node``: its triples and, recursively, those of
        every blank node or resource described in ``graph`` that it refers to (distributions,
        agents, contact points, periods...), except other datasets and catalogues.
        """
        out = Graph(store="SimpleMemory", bind_namespaces="none")
        # Markers that let parse_with_problems skip work already done on this graph.
        setattr(out, _DESCRIPTION_OF, node)
        setattr(out, _CANONICAL, getattr(graph, _CANONICAL, False))
        seen = {node}
        pending = [node]
        while pending:
            subject = pending.pop()
            for predicate, value in graph.predicate_objects(subject):
                out.add((subject, predicate, value))
                if predicate == RDF.type or isinstance(value, Literal) or value in seen:
                    continue
                seen.add(value)
                if (value, None, None) in graph and not self._is_boundary(graph, value):
                    pending.append(value)
        return out

    # -- parse side ---------------------------------------------------------------------------

    def _read(
        self, graph: Graph | Description, node: Node
    ) -> tuple[dict[str, Any], dict[str, Any], list[tuple[Node, dict[str, Any], dict[str, Any]]],
               list[str]]:
        ctx = ReadContext(graph, self.structures, references=frozenset({node}))
        attrs = ctx.read_rows(node, self.dataset_attribute_rows, "")
        values = ctx.read_rows(node, self.dataset_field_rows, "")
        for facet in self.facets:
            attrs.update(facet.derive(values))
        distributions = []
        for dist in ctx.objects(node, DCAT.distribution):
            if isinstance(dist, Literal):
                ctx.problem("dcat:distribution", dist, "is text, not a distribution")
                continue
            path = "dcat:distribution"
            dist_attrs = ctx.read_rows(dist, self.distribution_attribute_rows, path)
            extras = ctx.read_rows(dist, self.distribution_field_rows, path)
            if isinstance(dist, URIRef):
                extras = {"iri": str(dist), **extras}
            distributions.append((dist, dist_attrs, extras))
        distributions.sort(
            key=lambda d: (
                isinstance(d[0], BNode),
                str(d[0]) if isinstance(d[0], URIRef) else "",
                repr(sorted(d[1].items())),
                repr(sorted(d[2].items())),
            )
        )
        return attrs, values, distributions, ctx.problems

    @staticmethod
    def _as_graph(graph: Graph | Description) -> Graph:
        return graph.to_graph() if isinstance(graph, Description) else graph

    def _identifier(self, graph: Graph | Description, node: Node) -> str | None:
        for value in sorted(graph.objects(node, DCT.identifier), key=sort_key):
            if isinstance(value, URIRef | Literal) and str(value).strip():
                return str(value).strip()
        return str(node) if isinstance(node, URIRef) else None

    def parse_with_problems(
        self, graph: Graph | Description, node: Node, organisation_id: str,
        text: str | None = None,
    ) -> tuple[Dataset, list[str]]:
        """Read dataset ``node`` of ``graph`` (a document or a description).

        Returns the dataset and the problems found (each naming the property path and value);
        bad values are skipped, never fatal. ``Dataset.graph`` is the full description as
        sorted N-Triples with canonical blank-node labels (``text``, when the caller already
        computed it for this description).
        """
        description: Graph | Description
        if getattr(graph, _DESCRIPTION_OF, None) == node:
            description = graph
        else:
            description = self.description(self._as_graph(graph), node)
        if not getattr(description, _CANONICAL, False):
            description = self.canonicalise(self._as_graph(description))
        attrs, values, distributions, problems = self._read(description, node)
        if text is None or description is not graph:
            text = canonical_ntriples(description)
        identifier = self._identifier(description, node)
        if identifier is None:
            identifier = "urn:sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()
            problems.append(
                "dct:identifier: missing on a dataset without an IRI; an identifier was made "
                f"from its content ({identifier}), so each change will look like a new dataset"
            )
        extras = [extra for _, _, extra in distributions]
        if any(extras):
            values["distributions"] = extras
        dataset = Dataset(
            identifier=identifier,
            organisation_id=organisation_id,
            title=attrs.pop("title", {}),
            iri=str(node) if isinstance(node, URIRef) else None,
            distributions=[Distribution(**dist) for _, dist, _ in distributions],
            fields=values,
            graph=text,
            **{k: v for k, v in attrs.items() if k in _DATASET_ATTRIBUTES},
        )
        self.last_problems = problems
        return dataset, problems

    def parse(self, graph: Graph, node: Node, organisation_id: str) -> Dataset:
        """Like :meth:`parse_with_problems`; the problems are left in :attr:`last_problems`."""
        dataset, _ = self.parse_with_problems(graph, node, organisation_id)
        return dataset

    # -- serialise side -----------------------------------------------------------------------

    def serialise(self, ds: Dataset, base_uri: str = "http://localhost/",
                  prefixes: bool = True) -> Graph:
        """``ds`` as a DCAT graph with canonical namespaces.

        With a stored description (``ds.graph``) the result is that description, with only the
        properties whose values differ from ``ds`` (edited attributes or fields, record-derived
        ``ds.aggregates``) rewritten: an unchanged dataset round-trips exactly. Without one, the
        whole description is built from ``ds``; the dataset IRI is ``ds.iri``, else an
        ``http(s)`` identifier, else ``{base_uri}datasets/{identifier}``. ``prefixes=False``
        skips binding the canonical prefixes (for callers that serialise with Oxigraph).
        """
        ds = ds.with_aggregates()
        if ds.graph:
            graph = graph_from_ntriples(ds.graph)
            node = self._root(graph, ds)
            if node is not None:
                self._merge(graph, node, ds)
                return bind_prefixes(graph) if prefixes else graph
        graph = Graph()
        node = self._mint(ds, base_uri)
        self._write(graph, node, ds)
        return bind_prefixes(graph) if prefixes else graph

    def _mint(self, ds: Dataset, base_uri: str) -> URIRef:
        if ds.iri:
            return URIRef(ds.iri)
        if looks_like_iri(ds.identifier) and ds.identifier.lower().startswith("http"):
            return URIRef(ds.identifier)
        return URIRef(f"{base_uri.rstrip('/')}/datasets/{quote(ds.identifier, safe='')}")

    def root(self, graph: Graph, ds: Dataset) -> Node | None:
        """The node of ``ds`` in a graph made by :meth:`serialise` (None if there is none)."""
        return self._root(graph, ds)

    def _root(self, graph: Graph, ds: Dataset) -> Node | None:
        if ds.iri and (URIRef(ds.iri), None, None) in graph:
            return URIRef(ds.iri)
        candidates = self.dataset_nodes(graph)
        matching = [n for n in candidates if self._identifier(graph, n) == ds.identifier]
        if len(matching) == 1:
            return matching[0]
        return candidates[0] if len(candidates) == 1 else None

    def _targets(self, ds: Dataset) -> tuple[dict[str, Any], dict[str, Any]]:
        """The attribute and field values to write for ``ds``, facets pushed into fields."""
        attrs = {name: getattr(ds, name) for name, _, _ in self.dataset_attribute_rows}
        for facet in self.facets:
            attrs.update({name: getattr(ds, name) for name in facet.attrs})
        values = copy.deepcopy(ds.fields)
        values.pop("distributions", None)
        for facet in self.facets:
            facet.push(attrs, values)
        return attrs, values

    def _distribution_targets(
        self, ds: Dataset
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        extras = ds.fields.get("distributions") or []
        out = []
        for dist, extra in zip_longest(ds.distributions, extras):
            if dist is None:
                break
            out.append((asdict(dist), dict(extra or {})))
        return out

    def _writer(self, graph: Graph) -> WriteContext:
        return WriteContext(graph, self.structures, self.structure_types)

    def _write(self, graph: Graph, node: URIRef, ds: Dataset) -> None:
        attrs, values = self._targets(ds)
        writer = self._writer(graph)
        graph.add((node, RDF.type, DCAT.Dataset))
        graph.add((node, DCT.identifier, Literal(ds.identifier)))
        writer.write_rows(node, self.dataset_attribute_rows, attrs)
        writer.write_rows(node, self.dataset_field_rows, values)
        for index, (dist, extra) in enumerate(self._distribution_targets(ds), start=1):
            self._add_distribution(graph, node, dist, extra, index)

    def _add_distribution(
        self, graph: Graph, node: Node, dist: dict[str, Any], extra: dict[str, Any], index: int
    ) -> None:
        iri = extra.get("iri")
        if iri:
            dist_node: Node = URIRef(iri)
        elif isinstance(node, URIRef) and "#" not in node:
            dist_node = URIRef(f"{node}/distributions/{index}")
        else:
            dist_node = BNode()
        graph.add((node, DCAT.distribution, dist_node))
        graph.add((dist_node, RDF.type, DCAT.Distribution))
        writer = self._writer(graph)
        writer.write_rows(dist_node, self.distribution_attribute_rows, dist)
        writer.write_rows(dist_node, self.distribution_field_rows, extra)

    def _merge(self, graph: Graph, node: Node, ds: Dataset) -> None:
        old_attrs, old_values, old_distributions, _ = self._read(graph, node)
        attrs, values = self._targets(ds)
        self._merge_rows(graph, node, self.dataset_attribute_rows, old_attrs, attrs)
        self._merge_rows(graph, node, self.dataset_field_rows, old_values, values)
        current = self._identifier(graph, node)
        made_up = current is None and ds.identifier.startswith("urn:sha256:")
        if current != ds.identifier and not made_up:
            self._clear(graph, node, DCT.identifier)
            graph.add((node, DCT.identifier, Literal(ds.identifier)))
        targets = self._distribution_targets(ds)
        for index, (dist, extra) in enumerate(targets, start=1):
            if index > len(old_distributions):
                self._add_distribution(graph, node, dist, extra, index)
                continue
            dist_node, old_dist, old_extra = old_distributions[index - 1]
            self._merge_rows(graph, dist_node, self.distribution_attribute_rows, old_dist, dist)
            self._merge_rows(graph, dist_node, self.distribution_field_rows, old_extra, extra)
        for dist_node, _, _ in old_distributions[len(targets) :]:
            graph.remove((node, DCAT.distribution, dist_node))
            self._prune(graph, dist_node, node)

    def _merge_rows(
        self,
        graph: Graph,
        node: Node,
        rows: tuple[Row, ...],
        old: Mapping[str, Any],
        new: Mapping[str, Any],
    ) -> None:
        """Rewrite the properties (all rows sharing a predicate) whose values changed."""
        by_predicate: dict[URIRef, list[Row]] = {}
        for row in rows:
            by_predicate.setdefault(row[1], []).append(row)
        writer = self._writer(graph)
        for predicate, group in by_predicate.items():
            if all(_empty(old.get(name)) == _empty(new.get(name)) for name, _, _ in group):
                continue
            self._clear(graph, node, predicate)
            writer.write_rows(node, tuple(group), new)

    def _clear(self, graph: Graph, node: Node, predicate: URIRef) -> None:
        values = list(graph.objects(node, predicate))
        graph.remove((node, predicate, None))
        for value in values:
            self._prune(graph, value, node)

    def _prune(self, graph: Graph, term: Node, root: Node) -> None:
        """Remove the description of ``term`` once nothing refers to it any more."""
        if isinstance(term, Literal) or term == root or (None, None, term) in graph:
            return
        children = list(graph.predicate_objects(term))
        graph.remove((term, None, None))
        for predicate, child in children:
            if predicate != RDF.type:
                self._prune(graph, child, root)
