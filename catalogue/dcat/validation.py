"""SHACL validation of dataset descriptions, with per-record reports a data provider can read.

The harvester validates every new or changed record with :meth:`Validator.validate_dataset`;
:func:`get_validator` keeps one validator per profile combination for the whole process.

Profiles (shapes in ``ontologies/shacl/``, provenance in its ``SOURCES.md``):

* ``dcat-ap-3`` — the official DCAT-AP 3.0.1 SHACL. It already embeds the range (``sh:class``)
  constraints of the separate ``ranges.ttl``, which is not loaded: that file only adds
  ``sh:class rdfs:Resource`` on data-service endpoints and, like the SHACL file, refers to
  property shapes it does not define. Such undefined property shapes (two on dcat:DataService in
  the SHACL file) have nothing to check and are skipped; plain pySHACL would stop with an error.
* ``healthdcat-ap`` — the GDI pieces derived from HealthDCAT-AP Release 5, minus the constraints
  that are specific to GDI (genomics) or contradict HealthDCAT-AP Release 7 as inherited by
  EUCAIM-DCAT-AP v2; :data:`HEALTHDCAT_AP_ADJUSTMENTS` lists each one with its reason.
* ``health-ri`` — the Health-RI core metadata v2 shapes (not among the defaults).
* ``eucaim`` — ``eucaim-dcat-ap-2.shacl.ttl``, written for this project from the EUCAIM-DCAT-AP v2
  specification: mandatory → violation, recommended → warning, value sets → violation.

The DCAT-AP controlled-vocabulary shapes (``mdr-vocabularies.shape.ttl``) are not used: they need
``skos:inScheme`` on every value, i.e. the EU authority tables loaded into each validation. The
EUCAIM shapes check those value sets by IRI instead.

Decision on ranges and external IRIs. DCAT-AP gives the class of most values (``dct:publisher`` →
``foaf:Agent``, ``dct:accessRights`` → ``dct:RightsStatement``, ...). Providers reference
authority-table entries, ELIs, licences and their own agents by IRI without typing them; read
literally, the ranges reject every real record. A failed ``sh:class`` is therefore judged on what
the description says about the value:

* an IRI the description does not describe (no triple has it as subject) is an external
  reference: it is assumed to be of the expected class, and nothing is reported;
* a node the description describes but does not type: a *warning* ("has no rdf:type: expected a
  vcard:Kind");
* a node typed with another class, or a literal: a *violation* ("has the wrong class: it is a
  vcard:Kind, expected a foaf:Agent").

Subclass instances count (``ontologies/shacl/class-hierarchy.ttl``: a ``foaf:Organization`` is a
``foaf:Agent``). Range constraints on simple paths of targeted shapes (all of DCAT-AP's) are
checked by this module rather than by pySHACL: the decision needs to look at the value's own
description, and it avoids building hundreds of pySHACL results that would be thrown away.
``strict_ranges=True`` leaves them to pySHACL and reports every failure, e.g. for our own exports.

Requirements on the *content* of referenced resources are not relaxed: EUCAIM requires the
publisher's name and contact point, so a publisher given only as an external IRI is reported.

Reports name the property as a CURIE, say what is wrong and show the offending value. A failed
``sh:node`` ("value does not conform to shape X") is replaced by the nested problems themselves
("vcard:hasEmail is missing on the dcat:contactPoint of <…>"). A problem reported by several
profiles appears once, with the highest severity and the EUCAIM wording.

Performance. The shapes are parsed and compiled once per validator (:class:`_CompiledShapes`):
annotations dropped, property shapes sharing a path merged, targeted shapes split so that a
validation runs only those whose targets and properties occur in the description, large ``sh:in``
lists of IRIs turned into one regular expression, range constraints checked in Python. Each
validation then runs pySHACL in place on a private copy of the record's own subgraph, with
``inference="none"``, ``advanced=False``, no meta-SHACL and no SHACL-JS; pySHACL's constraint
parameter list gets a set-based membership test (:func:`_speed_up_pyshacl`). The compiled shapes
find exactly what plain pySHACL finds (``tests/unit/shacl/test_compiled_shapes.py``).

Measured on the 2-CPU development machine (CPU time, best of several rounds; the other CPU was
busy, and runs varied by a third), default profiles: a typical 150-triple EUCAIM record 20–31
validations/s (plain ``pyshacl.validate`` on the same subgraph and shapes: 7–11/s); the
Health-RI example dataset (26 triples, ~45 issues) 24–41/s (plain: 9–13/s). Loading the shapes
takes ≈ 0.6 s once per process. ``tests/unit/shacl/test_validation_speed.py`` guards against
regressions.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyshacl import ShapesGraph
from pyshacl import Validator as _Engine
from pyshacl.graph_abstraction import DataGraph
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.namespace import RDF, RDFS, SH, XSD
from rdflib.plugins.stores.memory import SimpleMemory
from rdflib.term import Node

from catalogue.dcat.description import Description
from catalogue.dcat.namespaces import PREFIXES
from catalogue.resources import resource_dir

log = logging.getLogger(__name__)

DEFAULT_PROFILES: tuple[str, ...] = ("dcat-ap-3", "healthdcat-ap", "eucaim")

@dataclass(frozen=True)
class Profile:
    """Shapes files of one profile (relative to ``ontologies/shacl``) and constraints removed
    from them: every value of ``parameter`` on ``shape``."""

    files: tuple[str, ...]
    remove: tuple[tuple[str, str], ...] = ()


_GDI = "http://data.gdi.eu/core/p2/"

# The GDI (Genomic Data Infrastructure) pieces are the published SHACL derived from
# HealthDCAT-AP Release 5. Removed: GDI's own rules, and rules that contradict HealthDCAT-AP
# Release 7 as inherited ("—") by EUCAIM-DCAT-AP v2 (Dataset.md, Distribution.md).
HEALTHDCAT_AP_ADJUSTMENTS: tuple[tuple[str, str], ...] = (
    # GDI identifier scheme "GOE|GDI-CC-ORG-N" and its message; xsd:string only would also
    # reject the xsd:anyURI identifiers of EUCAIM's examples.
    (_GDI + "DatasetShape#identifier", str(SH.pattern)),
    (_GDI + "DatasetShape#identifier", str(SH.message)),
    (_GDI + "DatasetShape#identifier", str(SH.datatype)),
    # GDI allows only genetic/genomic/epigenomic health categories,
    (_GDI + "DatasetShape#health-category", str(SH["in"])),
    # only the SYNTHETIC_DATA dataset type,
    (_GDI + "DatasetShape#type", str(SH["in"])),
    # and only GDI/1+MG standards.
    (_GDI + "DatasetShape#conforms-to", str(SH["in"])),
    # Creator is 0..n optional in HealthDCAT-AP Release 7; gdi:AgentCreatorShape is unpublished.
    (_GDI + "DatasetShape#creator", str(SH.minCount)),
    (_GDI + "DatasetShape#creator", str(SH.node)),
    # Shapes referenced but not published with the pieces (gdi:KindShape, gdi:IdentifierShape).
    (_GDI + "DatasetShape#contact-point", str(SH.node)),
    (_GDI + "DatasetShape#other-identifier", str(SH.node)),
    (_GDI + "AgentHdabShape#contact-point", str(SH.node)),
    # Distribution title is 0..n optional in HealthDCAT-AP Release 7.
    (_GDI + "DistributionShape#dct:title", str(SH.minCount)),
)

PROFILES: dict[str, Profile] = {
    "dcat-ap-3": Profile(("dcat-ap-3.0.1-SHACL.ttl",)),
    "healthdcat-ap": Profile(
        tuple(f"gdi-healthdcat-ap5/{name}.ttl" for name in
              ("Dataset", "Distribution", "AgentHdab", "DataService", "Catalog")),
        remove=HEALTHDCAT_AP_ADJUSTMENTS),
    "health-ri": Profile(("HRI-Datamodel-shapes.ttl",)),
    "eucaim": Profile(("eucaim-dcat-ap-2.shacl.ttl",)),
}
_CLASS_HIERARCHY = "class-hierarchy.ttl"

_DCAT = "http://www.w3.org/ns/dcat#"
_DATASET = URIRef(_DCAT + "Dataset")
# A dataset's description ends where another record (dataset, series, catalogue) begins.
_RECORD_CLASSES = frozenset(URIRef(_DCAT + c) for c in
                            ("Dataset", "DatasetSeries", "Catalog", "CatalogRecord"))
# Properties that name a blank node in a report: [ "Example Hospital" ].
_NAME_PROPERTIES = tuple(URIRef(p) for p in (
    "http://xmlns.com/foaf/0.1/name", "http://www.w3.org/2006/vcard/ns#fn",
    "http://purl.org/dc/terms/title", "http://www.w3.org/2000/01/rdf-schema#label",
    "http://www.w3.org/2004/02/skos/core#prefLabel"))
_EUCAIM_SHAPES = "urn:x-cancer-imaging-catalogue:shacl:eucaim-dcat-ap-2#"
# Annotation of the EUCAIM shapes: the property a node-level (sh:or) rule is about.
_REPORT_PATH = URIRef(_EUCAIM_SHAPES + "reportPath")

_SEVERITIES = {SH.Violation: "violation", SH.Warning: "warning", SH.Info: "info"}
_SEVERITY_RANK = {"violation": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Issue:
    """One problem in a description, worded for the data provider."""

    severity: str  # "violation" | "warning" | "info"
    focus: str  # IRI or blank-node label ("_:b0") of the focus node
    path: str | None  # the property as a compact name, e.g. "dct:description"
    message: str  # human-readable: what is wrong
    value: str | None = None  # the offending value: IRI, literal text or "_:label"
    shape: str | None = None  # the SHACL shape that reported it
    # Where a nested focus node sits, e.g. "the dct:publisher of <http://ex.org/ds/1>".
    location: str | None = None

    def describe(self) -> str:
        """One line: what is wrong and where, e.g.
        "dct:description is missing (at least 1 required) on <http://ex.org/ds/1>"."""
        where = self.location or _focus_label(self.focus)
        head, sep, tail = _split_clause(self.message.rstrip(". "))
        return f"{head} on {where}{sep}{tail}"


@dataclass(frozen=True)
class _Raw:
    """A validation result, mapped back to the original shape and constraint component."""

    focus: Node
    path: Node | None
    value: Node | None
    component: URIRef
    severity: str
    shape: Node


class Validator:
    """Validates dataset descriptions against a fixed list of profiles (shapes loaded once).

    Thread-safe; pySHACL runs are serialised (they are CPU-bound under the GIL anyway).
    """

    def __init__(self, profiles: Sequence[str] = DEFAULT_PROFILES, *,
                 strict_ranges: bool = False, shapes_dir: Path | None = None) -> None:
        unknown = [p for p in profiles if p not in PROFILES]
        if unknown:
            raise ValueError(f"unknown SHACL profile(s) {unknown}; known: {sorted(PROFILES)}")
        self.profiles = tuple(profiles)
        self.strict_ranges = strict_ranges
        folder = shapes_dir or resource_dir("ontologies") / "shacl"
        self._shapes = _load_shapes(folder, self.profiles)
        self._compiled = _CompiledShapes(self._shapes, ranges_apart=not strict_ranges)
        _speed_up_pyshacl()
        self._engine_shapes = ShapesGraph(self._compiled.graph)
        count = len(list(self._engine_shapes.shapes))  # parse every shape now, once
        self._supertypes = _supertypes(Graph().parse(folder / _CLASS_HIERARCHY))
        self._links = _target_links(self._shapes)
        self._lock = threading.Lock()
        log.info("SHACL validator ready: profiles=%s, %d shapes", ",".join(self.profiles), count)

    # -- public API ---------------------------------------------------------------------------
    def validate(self, graph: Graph) -> list[Issue]:
        """Every issue in ``graph`` (a whole document: catalogue, datasets, distributions...)."""
        work = Graph()
        for triple in graph:
            work.add(triple)
        return self._check(work, root=None)

    def validate_dataset(self, description: Graph | Description, node: Node) -> list[Issue]:
        """Issues about the dataset ``node`` and the resources its description reaches
        (distributions, agents, contact points, ...); other records are not validated."""
        work = _record_subgraph(description, node)
        if len(work) == 0:
            return [Issue("violation", _node_id(node), None,
                          "the description says nothing about this dataset")]
        missing_type = not any((node, RDF.type, c) in work for c in _RECORD_CLASSES)
        if missing_type:
            work.add((node, RDF.type, _DATASET))  # validate it as the dataset it is said to be
        issues = self._check(work, root=node)
        if missing_type:
            issues.insert(0, Issue("violation", _node_id(node), "rdf:type",
                                   "rdf:type dcat:Dataset is missing", shape=None))
        return issues

    def conforms(self, issues: Sequence[Issue]) -> bool:
        """True when there is no violation (warnings and infos do not count)."""
        return not any(i.severity == "violation" for i in issues)

    # -- checking -----------------------------------------------------------------------------
    def _check(self, work: Graph, root: Node | None) -> list[Issue]:
        for s, cls in list(work.subject_objects(RDF.type)):
            for sup in self._supertypes.get(cls, ()):
                work.add((s, RDF.type, sup))
        raws = self._expand_nested(work, self._run(work) + self._check_ranges(work))
        if not self.strict_ranges:
            raws = [r for r in (_judge_range(work, r) for r in raws) if r is not None]
        locator = _Locator(work, root)
        found = [(r, self._issue(work, r, locator)) for r in raws]
        return _tidy(found, lambda r: locator.link(r.focus) in self._links.get(r.shape, ()))

    def _run(self, work: Graph, focus: Node | None = None,
             node_shape: Node | None = None) -> list[_Raw]:
        """pySHACL on ``work``: the applicable compiled shapes, or one node shape on one node."""
        use_shapes = self._compiled.applicable(work) if focus is None else None
        if use_shapes == []:
            return []  # nothing in this description is targeted by any shape
        options = {"inplace": True, "inference": "none", "advanced": False, "use_js": False,
                   "use_shapes": use_shapes}
        with self._lock:
            engine = _Engine(DataGraph.from_rdflib(work), shacl_graph=Graph(), options=options)
            engine.shacl_graph = self._engine_shapes  # parsed once, in __init__
            if focus is None:
                _conforms, report, _text = engine.run()
            else:
                nested = self._engine_shapes.lookup_shape_from_node(node_shape)
                ok, results = nested.validate(engine.make_executor(), engine.data_graph,
                                              focus=[focus])  # type: ignore[list-item]
                report, _text = _Engine.create_validation_report(self._engine_shapes, ok, results)
        raws = []
        for r in _read_report(report):
            shape, component = self._compiled.original(r.shape, r.component)
            raws.append(_Raw(r.focus, r.path, r.value, component, r.severity, shape))
        return raws

    def _check_ranges(self, work: Graph) -> list[_Raw]:
        """The range rules taken out of pySHACL, as failed sh:class results."""
        raws: list[_Raw] = []
        foci: dict[tuple[tuple[Node, Node], ...], set[Node]] = {}
        for rule in self._compiled.ranges:
            if rule.targets not in foci:
                foci[rule.targets] = rule.focus_nodes(work)
            for focus in foci[rule.targets]:
                for value in work.objects(focus, rule.path):
                    if not _is_instance(work, value, rule.cls):
                        raws.append(_Raw(focus, rule.path, value, SH.ClassConstraintComponent,
                                         rule.severity, rule.shape))
        return raws

    def _expand_nested(self, work: Graph, raws: list[_Raw], depth: int = 0) -> list[_Raw]:
        """Replace "value does not conform to shape X" by the value's own problems."""
        out: list[_Raw] = []
        for raw in raws:
            if raw.component != SH.NodeConstraintComponent or raw.value is None or depth > 3:
                out.append(raw)
                continue
            nested: list[_Raw] = []
            for node_shape in self._shapes.objects(raw.shape, SH.node):
                found = self._run(work, focus=raw.value, node_shape=node_shape)
                nested += self._expand_nested(work, found, depth + 1)
            out += nested or [raw]
        return out

    # -- wording ------------------------------------------------------------------------------
    def _issue(self, work: Graph, raw: _Raw, locator: _Locator) -> Issue:
        path = self._path_text(raw)
        value = raw.value if raw.value is not None and raw.value != raw.focus else None
        value_text = _value_text(work, value) if value is not None else None
        custom = self._shape_message(raw.shape)
        if custom:
            message = _with_value(custom, path, value_text)
        else:
            message = _Wording(self._shapes, work, raw, path or "the node", value_text).text()
        return Issue(severity=raw.severity, focus=_node_id(raw.focus), path=path, message=message,
                     value=_node_id(value) if value is not None else None,
                     shape=_node_id(raw.shape), location=locator.describe(raw.focus))

    def _path_text(self, raw: _Raw) -> str | None:
        path = self._shapes.value(raw.shape, SH.path) or raw.path
        if path is None:
            path = self._shapes.value(raw.shape, _REPORT_PATH)
        return _path_to_text(self._shapes, path) if path is not None else None

    def _shape_message(self, shape: Node) -> str | None:
        messages = list(self._shapes.objects(shape, SH.message))
        for m in messages:
            if isinstance(m, Literal) and m.language in (None, "en"):
                return str(m)
        return str(messages[0]) if messages else None


def _judge_range(work: Graph, raw: _Raw) -> _Raw | None:
    """The range decision (module docstring) applied to a failed sh:class constraint."""
    value = raw.value
    if raw.component != SH.ClassConstraintComponent or value is None or isinstance(value, Literal):
        return raw
    if isinstance(value, URIRef) and (value, None, None) not in work:
        return None  # an external reference: assumed to be of the expected class
    if (value, RDF.type, None) not in work:
        severity = "warning" if raw.severity == "violation" else raw.severity
        return _Raw(raw.focus, raw.path, value, raw.component, severity, raw.shape)
    return raw


class _Wording:
    """The generated message for a result of a shape without its own sh:message."""

    def __init__(self, shapes: Graph, work: Graph, raw: _Raw, path: str,
                 value: str | None) -> None:
        self.shapes, self.work, self.raw, self.path = shapes, work, raw, path
        self.subject = f"{path} value {value}" if value is not None else path

    def param(self, name: str) -> Node | None:
        return self.shapes.value(self.raw.shape, SH[name])

    def text(self) -> str:
        template = _TEMPLATES.get(self.raw.component)
        if template is None:
            return f"{self.subject} does not satisfy {_compact(self.raw.component)}"
        return template(self)

    def min_count(self) -> str:
        n = _int(self.param("minCount"), 1)
        found = len(_values(self.work, self.raw.focus, self.param("path")))
        if not found:
            return f"{self.path} is missing (at least {n} required)"
        return f"{self.path} has {found} value(s), at least {n} required"

    def max_count(self) -> str:
        values = _values(self.work, self.raw.focus, self.param("path"))
        shown = ", ".join(_value_text(self.work, v) for v in values[:4])
        return (f"{self.path} has too many values: {len(values)} given ({shown}), at most "
                f"{_int(self.param('maxCount'), 0)} allowed")

    def datatype(self) -> str:
        expected = _compact(self.param("datatype"))
        value = self.raw.value
        if not isinstance(value, Literal):
            return f"{self.subject} must be a literal of type {expected}, not a resource"
        actual = _literal_type(value)
        if actual == expected:
            return f"{self.subject} is not a valid {expected}"
        return f"{self.subject} has the wrong datatype: expected {expected}, found {actual}"

    def node_kind(self) -> str:
        kinds = {SH.IRI: "an IRI", SH.Literal: "a literal", SH.BlankNode: "a blank node",
                 SH.BlankNodeOrIRI: "an IRI or a blank node", SH.IRIOrLiteral:
                 "an IRI or a literal", SH.BlankNodeOrLiteral: "a blank node or a literal"}
        expected = self.param("nodeKind")
        kind = kinds[expected] if isinstance(expected, URIRef) and expected in kinds \
            else "another kind of node"
        return f"{self.subject} must be {kind}, not {_kind_of(self.raw.value)}"

    def class_(self) -> str:
        expected = _compact(self.param("class"))
        if isinstance(self.raw.value, Literal):
            return f"{self.subject} must be a resource of class {expected}, not a literal"
        types = sorted(_compact(t) for t in self.work.objects(self.raw.value, RDF.type))
        if not types:
            return f"{self.subject} has no rdf:type: expected a {expected}"
        return f"{self.subject} has the wrong class: it is a {', '.join(types)}, expected a " \
               f"{expected}"

    def in_(self) -> str:
        allowed = _list_items(self.shapes, self.param("in"))
        shown = ", ".join(_compact(a) for a in allowed[:6]) + (", …" if len(allowed) > 6 else "")
        return f"{self.subject} is not in the allowed value set ({shown})"

    def has_value(self) -> str:
        return f"{self.path} must include the value {_compact(self.param('hasValue'))}"

    def pattern(self) -> str:
        return f"{self.subject} does not match the required pattern {self.param('pattern')}"

    def language_in(self) -> str:
        langs = ", ".join(str(x) for x in _list_items(self.shapes, self.param("languageIn")))
        return f"{self.subject} has a language tag other than {langs}"

    def unique_lang(self) -> str:
        return f"{self.path} has more than one value in the same language"

    def node(self) -> str:
        target = ", ".join(_compact(n) for n in self.shapes.objects(self.raw.shape, SH.node))
        return f"{self.subject} does not conform to {target}"

    def qualified(self) -> str:
        return f"{self.path} has the wrong number of values of the required kind"

    def closed(self) -> str:
        return f"{self.subject} is not allowed here"

    def length(self) -> str:
        return f"{self.subject} has the wrong length"

    def range_(self) -> str:
        return f"{self.subject} is out of the allowed range"

    def logical(self) -> str:
        return f"{self.subject} does not satisfy the allowed alternatives"


_TEMPLATES: dict[URIRef, Callable[[_Wording], str]] = {
    SH.MinCountConstraintComponent: _Wording.min_count,
    SH.MaxCountConstraintComponent: _Wording.max_count,
    SH.DatatypeConstraintComponent: _Wording.datatype,
    SH.NodeKindConstraintComponent: _Wording.node_kind,
    SH.ClassConstraintComponent: _Wording.class_,
    SH.InConstraintComponent: _Wording.in_,
    SH.HasValueConstraintComponent: _Wording.has_value,
    SH.PatternConstraintComponent: _Wording.pattern,
    SH.LanguageInConstraintComponent: _Wording.language_in,
    SH.UniqueLangConstraintComponent: _Wording.unique_lang,
    SH.NodeConstraintComponent: _Wording.node,
    SH.QualifiedMinCountConstraintComponent: _Wording.qualified,
    SH.QualifiedMaxCountConstraintComponent: _Wording.qualified,
    SH.ClosedConstraintComponent: _Wording.closed,
    SH.MinLengthConstraintComponent: _Wording.length,
    SH.MaxLengthConstraintComponent: _Wording.length,
    **{SH[f"{bound}ConstraintComponent"]: _Wording.range_ for bound in
       ("MinInclusive", "MaxInclusive", "MinExclusive", "MaxExclusive")},
    **{SH[f"{op}ConstraintComponent"]: _Wording.logical for op in ("Or", "Xone", "And", "Not")},
}


class _ParameterList(list[Node]):
    """pySHACL's list of constraint parameters, with a set for membership tests."""

    def __init__(self, items: Sequence[Node]) -> None:
        super().__init__(items)
        self._members = frozenset(items)

    def __contains__(self, item: object) -> bool:
        return item in self._members


def _speed_up_pyshacl() -> None:
    """On every shape evaluation pySHACL tests each predicate of the shape for membership in a
    list of ~30 constraint parameters (``pyshacl/shape.py``), a third of its time here. It
    caches that list on its module as ``CONSTRAINT_PARAMS``; the same list, with a set-based
    membership test, changes nothing else (same items and order, copies are plain lists).
    Left alone if pySHACL's internals are not what this expects: validation is then slower,
    never different."""
    import pyshacl.shape as shape_module
    from pyshacl.constraints import ALL_CONSTRAINT_PARAMETERS, CONSTRAINT_PARAMETERS_MAP

    if getattr(shape_module, "module", None) is not shape_module:
        return  # not the pySHACL this was written for
    current = getattr(shape_module, "CONSTRAINT_PARAMS", None)
    if current is not None:
        parameters = current[0] if isinstance(current, tuple) and len(current) == 2 else None
        if isinstance(parameters, _ParameterList) or parameters is None or \
                list(parameters) != list(ALL_CONSTRAINT_PARAMETERS):
            return
    shape_module.CONSTRAINT_PARAMS = (
        _ParameterList(ALL_CONSTRAINT_PARAMETERS), CONSTRAINT_PARAMETERS_MAP)


# -- process-wide cache ---------------------------------------------------------------------------

_CACHE: dict[tuple[tuple[str, ...], bool], Validator] = {}
_CACHE_LOCK = threading.Lock()


def get_validator(profiles: Sequence[str] = DEFAULT_PROFILES, *,
                  strict_ranges: bool = False) -> Validator:
    """The process-wide validator for ``profiles``, built on first use and then shared."""
    key = (tuple(profiles), strict_ranges)
    with _CACHE_LOCK:
        validator = _CACHE.get(key)
        if validator is None:
            validator = _CACHE[key] = Validator(key[0], strict_ranges=strict_ranges)
        return validator


# -- loading --------------------------------------------------------------------------------------

def _load_shapes(folder: Path, profiles: Sequence[str]) -> Graph:
    shapes = Graph()
    for name in profiles:
        profile = PROFILES[name]
        for file in profile.files:
            shapes.parse(folder / file, format="turtle")
        for shape, parameter in profile.remove:
            shapes.remove((URIRef(shape), URIRef(parameter), None))
    return shapes


def _target_links(shapes: Graph) -> dict[Node, frozenset[Node]]:
    """Shape → the properties whose objects it targets (sh:targetObjectsOf), for node shapes
    and for their property shapes."""
    links: dict[Node, set[Node]] = {}
    for shape, prop in shapes.subject_objects(SH.targetObjectsOf):
        links.setdefault(shape, set()).add(prop)
        for property_shape in shapes.objects(shape, SH.property):
            links.setdefault(property_shape, set()).add(prop)
    return {shape: frozenset(props) for shape, props in links.items()}


def _supertypes(hierarchy: Graph) -> dict[Node, frozenset[Node]]:
    """Class → all its superclasses, from rdfs:subClassOf axioms."""
    direct: dict[Node, set[Node]] = {}
    for sub, sup in hierarchy.subject_objects(RDFS.subClassOf):
        direct.setdefault(sub, set()).add(sup)
    closure: dict[Node, frozenset[Node]] = {}
    for cls in direct:
        seen: set[Node] = set()
        todo = list(direct[cls])
        while todo:
            c = todo.pop()
            if c not in seen:
                seen.add(c)
                todo += direct.get(c, ())
        closure[cls] = frozenset(seen)
    return closure


# -- compiling the shapes -------------------------------------------------------------------------

_TARGETS = (SH.targetClass, SH.targetSubjectsOf, SH.targetObjectsOf, SH.targetNode)
_SHAPE_LEVEL = frozenset({RDF.type, SH.severity, SH.deactivated, SH.path, *_TARGETS})
_ANNOTATIONS = frozenset({SH.name, SH.description, SH.message, SH.order, SH.group,
                          SH.defaultValue})
# Constraint parameters that work together stay together when property shapes are merged.
_FAMILY: dict[Node, Node] = {
    SH.qualifiedMinCount: SH.qualifiedValueShape, SH.qualifiedMaxCount: SH.qualifiedValueShape,
    SH.qualifiedValueShapesDisjoint: SH.qualifiedValueShape, SH.flags: SH.pattern,
    SH.ignoredProperties: SH.closed,
}
# Reported constraint component → the parameter (family) that produced it.
_COMPONENT_PARAMETER: dict[Node, Node] = {
    SH.QualifiedMinCountConstraintComponent: SH.qualifiedValueShape,
    SH.QualifiedMaxCountConstraintComponent: SH.qualifiedValueShape,
    SH.SPARQLConstraintComponent: SH.sparql,
    **{SH[f"{name[0].upper()}{name[1:]}ConstraintComponent"]: SH[name] for name in (
        "class", "datatype", "nodeKind", "minCount", "maxCount", "minExclusive", "minInclusive",
        "maxExclusive", "maxInclusive", "not", "and", "or", "xone", "minLength", "maxLength",
        "pattern", "languageIn", "uniqueLang", "equals", "disjoint", "lessThan",
        "lessThanOrEquals", "node", "property", "closed", "hasValue", "in")},
}
_COMPILED = "urn:x-cancer-imaging-catalogue:shacl:compiled#"
_LARGE_VALUE_SET = 32


@dataclass(frozen=True)
class _RangeRule:
    """A range: the values of ``path`` on the targeted nodes must be instances of ``cls``."""

    targets: tuple[tuple[Node, Node], ...]
    path: URIRef
    cls: Node
    shape: Node
    severity: str

    def focus_nodes(self, graph: Graph) -> set[Node]:
        found: set[Node] = set()
        for kind, obj in self.targets:
            if kind == SH.targetClass:
                found.update(graph.subjects(RDF.type, obj))
            elif kind == SH.targetSubjectsOf:
                found.update(graph.subjects(obj, None))
            elif kind == SH.targetObjectsOf:
                found.update(o for o in graph.objects(None, obj) if not isinstance(o, Literal))
            else:
                found.add(obj)
        return found


@dataclass(frozen=True)
class _Selector:
    """When a compiled top-level shape can find something to check in a description."""

    classes: frozenset[Node]  # sh:targetClass
    predicates: frozenset[Node]  # sh:targetSubjectsOf, sh:targetObjectsOf
    nodes: frozenset[Node]  # sh:targetNode
    # The path predicate its property shapes need: without it they cannot fail (they have no
    # sh:minCount, sh:hasValue, ...). None: always run.
    needs: Node | None

    def applies(self, classes: set[Node], predicates: set[Node], subjects: set[Node]) -> bool:
        targeted = self.classes & classes or self.predicates & predicates or self.nodes & subjects
        return bool(targeted) and (self.needs is None or self.needs in predicates)


class _CompiledShapes:
    """The shapes as pySHACL evaluates them here, compiled once.

    pySHACL's cost is per shape evaluated (it scans every predicate of a shape each time), so:
    annotations are dropped; large sh:in lists of IRIs become a regular expression (pySHACL
    re-reads sh:in lists on every evaluation); with ``ranges_apart``, range constraints go to
    :class:`_RangeRule`; node shapes with the same targets are split into top-level shapes,
    one per predicate their property shapes need, so that a validation runs only those that can
    fail; and within them, property shapes on the same path with the same severity are merged
    when their parameters do not overlap. Original shapes stay in the graph for sh:node
    references, and every result maps back to the original shape and constraint.
    """

    def __init__(self, shapes: Graph, *, ranges_apart: bool) -> None:
        self.graph = Graph(store=SimpleMemory())  # context-free store: faster lookups
        self.selectors: dict[str, _Selector] = {}
        self.ranges: list[_RangeRule] = []
        self._origin: dict[tuple[Node, Node], Node] = {}  # (compiled shape, parameter) → shape
        self._renamed: dict[tuple[Node, Node], URIRef] = {}  # (shape, component) → component
        self._count = 0
        self._copy_constraints(shapes)
        self._compile_value_sets()
        if ranges_apart:
            self._take_out_ranges(shapes)
        by_targets: dict[frozenset[tuple[Node, Node]], list[Node]] = {}
        for shape in sorted({s for t in _TARGETS for s in shapes.subjects(t, None)}, key=str):
            if (shape, SH.deactivated, Literal(True)) not in self.graph:
                by_targets.setdefault(frozenset(self._targets(shapes, shape)), []).append(shape)
        for targets, group in by_targets.items():
            self._split(shapes, targets, group)

    def applicable(self, work: Graph) -> list[str]:
        """IRIs of the top-level shapes that can find something to check in ``work``."""
        classes = set(work.objects(None, RDF.type))
        predicates = set(work.predicates())
        subjects = set(work.subjects())
        return [iri for iri, selector in self.selectors.items()
                if selector.applies(classes, predicates, subjects)]

    def original(self, shape: Node, component: URIRef) -> tuple[Node, URIRef]:
        """The original shape and constraint component behind a result of a compiled shape."""
        parameter = _COMPONENT_PARAMETER.get(component)
        if parameter is not None:
            shape = self._origin.get((shape, parameter), shape)
        return shape, self._renamed.get((shape, component), component)

    def _new(self, kind: str) -> URIRef:
        self._count += 1
        return URIRef(f"{_COMPILED}{kind}{self._count}")

    def _copy_constraints(self, shapes: Graph) -> None:
        """What pySHACL needs: shape types, targets, paths, constraint parameters, RDF lists."""
        for s, p, o in shapes:
            if p in (RDF.first, RDF.rest):
                self.graph.add((s, p, o))
            elif p == RDF.type:
                if isinstance(o, URIRef) and o.startswith(str(SH)):
                    self.graph.add((s, p, o))
            elif isinstance(p, URIRef) and p.startswith(str(SH)) and p not in _ANNOTATIONS:
                if not (p == SH.closed and o == Literal(False)):  # sh:closed false: a no-op
                    self.graph.add((s, p, o))

    def _compile_value_sets(self) -> None:
        """Large sh:in lists of IRIs → IRI + an anchored regular expression."""
        for shape, head in list(self.graph.subject_objects(SH["in"])):
            items = _list_items(self.graph, head)
            iris = [i for i in items if isinstance(i, URIRef)]
            if len(iris) < _LARGE_VALUE_SET or len(iris) != len(items):
                continue
            if (shape, SH.pattern, None) in self.graph or (shape, SH.nodeKind, None) in self.graph:
                continue
            self.graph.remove((shape, SH["in"], head))
            self.graph.add((shape, SH.nodeKind, SH.IRI))
            self.graph.add((shape, SH.pattern, Literal(_alternation(iris))))
            self._renamed[(shape, SH.PatternConstraintComponent)] = SH.InConstraintComponent
            self._renamed[(shape, SH.NodeKindConstraintComponent)] = SH.InConstraintComponent

    def _take_out_ranges(self, shapes: Graph) -> None:
        """sh:class on a simple path of a property shape used only by targeted, unreferenced
        node shapes → :class:`_RangeRule`."""
        referenced = {o for _s, p, o in shapes if p == RDF.first or (
            isinstance(p, URIRef) and p.startswith(str(SH)) and p not in _TARGETS
            and p != SH.property)}
        owners: dict[Node, list[Node]] = {}
        for shape, prop in shapes.subject_objects(SH.property):
            owners.setdefault(prop, []).append(shape)
        for prop, node_shapes in sorted(owners.items(), key=lambda item: str(item[0])):
            path = self.graph.value(prop, SH.path)
            classes = list(self.graph.objects(prop, SH["class"]))
            if not classes or not isinstance(path, URIRef) or prop in referenced:
                continue
            if any(s in referenced or not self._targets(shapes, s) for s in node_shapes):
                continue
            severity = self.graph.value(prop, SH.severity)
            level = _SEVERITIES.get(severity, "violation") if isinstance(severity, URIRef) \
                else "violation"
            for owner in node_shapes:
                for cls in classes:
                    self.ranges.append(_RangeRule(self._targets(shapes, owner), path, cls, prop,
                                                  level))
            for cls in classes:
                self.graph.remove((prop, SH["class"], cls))

    @staticmethod
    def _targets(shapes: Graph, shape: Node) -> tuple[tuple[Node, Node], ...]:
        return tuple((t, o) for t in _TARGETS for o in shapes.objects(shape, t))

    def _split(self, shapes: Graph, targets: frozenset[tuple[Node, Node]],
               group: list[Node]) -> None:
        classes = frozenset(o for t, o in targets if t == SH.targetClass)
        predicates = frozenset(o for t, o in targets
                               if t in (SH.targetSubjectsOf, SH.targetObjectsOf))
        nodes = frozenset(o for t, o in targets if t == SH.targetNode)
        target_params = sorted(targets)
        for shape in group:  # node-level constraints (sh:or, sh:closed, ...): one shape each
            node_level = self._parameters(shape)
            if node_level:
                top = self._new("node")
                self._add_shape(top, SH.NodeShape, [*target_params, *node_level, *(
                    (p, o) for p in (SH.severity, SH.deactivated)
                    for o in self.graph.objects(shape, p))])
                for p, _o in node_level:
                    self._origin[(top, _FAMILY.get(p, p))] = shape
                self.selectors[str(top)] = _Selector(classes, predicates, nodes, None)
        properties = [p for shape in group for p in shapes.objects(shape, SH.property)]
        needed: dict[Node | None, list[tuple[Node, Node]]] = {}
        for prop in self._merged(properties):
            needed.setdefault(self._needed_predicate(prop), []).append((SH.property, prop))
        for needs, params in needed.items():
            top = self._new("top")
            self._add_shape(top, SH.NodeShape, [*target_params, *params])
            self.selectors[str(top)] = _Selector(classes, predicates, nodes, needs)

    def _parameters(self, shape: Node) -> list[tuple[Node, Node]]:
        return [(p, o) for p, o in self.graph.predicate_objects(shape)
                if p not in _SHAPE_LEVEL and p != SH.property]

    def _families(self, shape: Node) -> set[Node]:
        return {_FAMILY.get(p, p) for p, _o in self._parameters(shape)} | (
            {SH.property} if (shape, SH.property, None) in self.graph else set())

    def _add_shape(self, shape: URIRef, kind: URIRef, params: list[tuple[Node, Node]]) -> None:
        self.graph.add((shape, RDF.type, kind))
        for p, o in params:
            self.graph.add((shape, p, o))

    def _merged(self, properties: list[Node]) -> list[Node]:
        """Property shapes on the same path with the same severity, merged while their
        parameters do not overlap (each result must map back to one original shape)."""
        groups: dict[tuple[Node, ...], list[list[Node]]] = {}
        for prop in sorted(set(properties), key=str):
            families = self._families(prop)
            if not families:
                continue  # nothing left to check (its sh:class became a range rule)
            path = self.graph.value(prop, SH.path)
            key = (path if isinstance(path, URIRef) else prop,
                   *sorted(self.graph.objects(prop, SH.severity), key=str),
                   *sorted(self.graph.objects(prop, SH.deactivated), key=str))
            buckets = groups.setdefault(key, [])
            for bucket in buckets:
                if not families & set().union(*(self._families(m) for m in bucket)):
                    bucket.append(prop)
                    break
            else:
                buckets.append([prop])
        return [bucket[0] if len(bucket) == 1 else self._merge(bucket)
                for buckets in groups.values() for bucket in buckets]

    def _merge(self, bucket: list[Node]) -> URIRef:
        merged = self._new("property")
        first = bucket[0]
        params: list[tuple[Node, Node]] = [(p, o) for p in (SH.path, SH.severity, SH.deactivated)
                                           for o in self.graph.objects(first, p)]
        for member in bucket:
            for family in self._families(member):
                self._origin[(merged, family)] = member
            params += self._parameters(member)
            params += [(SH.property, o) for o in self.graph.objects(member, SH.property)]
        self._add_shape(merged, SH.PropertyShape, params)
        return merged

    def _needed_predicate(self, prop: Node) -> Node | None:
        """The path predicate without which ``prop`` cannot fail; None if it always can."""
        path = self.graph.value(prop, SH.path)
        if not isinstance(path, URIRef):
            return None
        for p, o in self.graph.predicate_objects(prop):
            if p in (SH.hasValue, SH.equals) or (
                    p in (SH.minCount, SH.qualifiedMinCount) and _int(o, 1) > 0):
                return None
        return path


def _alternation(iris: list[URIRef]) -> str:
    """A regular expression matching exactly the given IRIs (grouped by namespace)."""
    groups: dict[str, list[str]] = {}
    for iri in iris:
        cut = max(iri.rfind("#"), iri.rfind("/")) + 1
        groups.setdefault(iri[:cut], []).append(iri[cut:])
    parts = [re.escape(ns) + "(?:" + "|".join(re.escape(n) for n in sorted(names)) + ")"
             for ns, names in sorted(groups.items())]
    return "^(?:" + "|".join(parts) + ")$"


# -- the record's subgraph and where its nodes sit ------------------------------------------------

def _record_subgraph(description: Graph | Description, root: Node) -> Graph:
    """Triples of ``root`` and of every node it reaches, stopping at other records."""
    records = {s for c in _RECORD_CLASSES for s in description.subjects(RDF.type, c)}
    out = Graph()
    seen = {root}
    todo = [root]
    while todo:
        subject = todo.pop()
        for p, o in description.predicate_objects(subject):
            out.add((subject, p, o))
            if o in seen or isinstance(o, Literal):
                continue
            seen.add(o)
            if not (isinstance(o, URIRef) and o in records):
                todo.append(o)
    return out


class _Locator:
    """Where a nested node sits: "the cv:contactPoint of the dct:publisher of <…>"."""

    def __init__(self, graph: Graph, root: Node | None) -> None:
        self.graph = graph
        self.root = root
        self.parents: dict[Node, tuple[Node, Node]] = {}
        if root is not None:  # breadth first: the shortest way from the dataset
            todo = [root]
            while todo:
                subject = todo.pop(0)
                for p, o in sorted(graph.predicate_objects(subject), key=_link_order):
                    if not isinstance(o, Literal) and o not in self.parents and o != root:
                        self.parents[o] = (subject, p)
                        todo.append(o)

    def _parent(self, node: Node) -> tuple[Node, Node] | None:
        if self.root is not None:
            return self.parents.get(node)
        links = sorted(self.graph.subject_predicates(node), key=lambda sp: _link_order(sp[::-1]))
        return (links[0][0], links[0][1]) if links else None

    def link(self, node: Node) -> Node | None:
        """The property through which ``node`` is reached (None for the dataset itself)."""
        parent = self._parent(node) if node != self.root else None
        return parent[1] if parent else None

    def describe(self, node: Node) -> str | None:
        if node == self.root or (self.root is None and not isinstance(node, BNode)):
            return None
        steps: list[str] = []
        current = node
        while len(steps) < 6:
            link = self._parent(current)
            if link is None:
                break
            current, prop = link
            steps.append(f"the {_compact(prop)}")
            if not isinstance(current, BNode):
                break
        if not steps:
            return None
        anchor = "a blank node" if isinstance(current, BNode) else _focus_label(_node_id(current))
        chain = f"{' of '.join(steps)} of {anchor}"
        return chain if isinstance(node, BNode) else f"{_focus_label(_node_id(node))} ({chain})"


def _link_order(link: tuple[Node, Node]) -> tuple[int, str, str]:
    """Usual roles first, so a node that is both publisher and custodian is "the publisher"."""
    predicate, value = link
    rank = _MAIN_LINKS.index(predicate) if predicate in _MAIN_LINKS else len(_MAIN_LINKS)
    return rank, str(predicate), str(value)


_MAIN_LINKS = tuple(URIRef(p) for p in (
    _DCAT + "distribution", "http://purl.org/dc/terms/publisher", _DCAT + "contactPoint",
    "http://data.europa.eu/m8g/contactPoint", "http://purl.org/dc/terms/creator"))


# -- reading pySHACL reports and tidying issues ---------------------------------------------------

def _read_report(report: Graph) -> Iterator[_Raw]:
    for result in report.subjects(RDF.type, SH.ValidationResult):
        focus = report.value(result, SH.focusNode)
        component = report.value(result, SH.sourceConstraintComponent)
        shape = report.value(result, SH.sourceShape)
        if focus is None or not isinstance(component, URIRef) or shape is None:
            continue
        severity = report.value(result, SH.resultSeverity)
        yield _Raw(focus, report.value(result, SH.resultPath), report.value(result, SH.value),
                   component, _SEVERITIES.get(severity, "violation")
                   if isinstance(severity, URIRef) else "violation", shape)


def _tidy(found: list[tuple[_Raw, Issue]], fits: Callable[[_Raw], bool]) -> list[Issue]:
    """One issue per problem, in reading order.

    Profiles overlap (DCAT-AP, HealthDCAT-AP and EUCAIM all require dct:description): a problem
    is kept once, with the highest severity, the EUCAIM wording, and the wording of the shape
    that targets the node in the role the report names (``fits``: a node that is publisher and
    custodian is "the dct:publisher", so the publisher's message). "No value of the required
    kind" (a qualified count) next to "is missing" says nothing more.
    """
    def rank(raw: _Raw, issue: Issue) -> tuple[int, int, int, str]:
        curated = 0 if (issue.shape or "").startswith(_EUCAIM_SHAPES) else 1
        return _SEVERITY_RANK[issue.severity], curated, 0 if fits(raw) else 1, issue.message

    best: dict[tuple[str, str | None, str | None, str], tuple[_Raw, Issue]] = {}
    for raw, issue in found:
        key = (issue.focus, issue.path, issue.value, str(raw.component))
        kept = best.get(key)
        if kept is None or rank(raw, issue) < rank(*kept):
            best[key] = (raw, issue)
    missing = {(i.focus, i.path) for r, i in best.values()
               if r.component == SH.MinCountConstraintComponent}
    issues: dict[tuple[str, str | None, str | None, str], Issue] = {}
    for raw, issue in sorted(best.values(), key=lambda item: rank(*item)):
        if raw.component == SH.QualifiedMinCountConstraintComponent and \
                (issue.focus, issue.path) in missing:
            continue
        # One shape may fail twice on a value (sh:nodeKind and sh:pattern) with one message.
        issues.setdefault((issue.focus, issue.path, issue.value, issue.message), issue)
    return sorted(issues.values(), key=lambda i: (
        _SEVERITY_RANK[i.severity], i.location is not None, i.location or i.focus, i.path or "",
        i.message))


# -- rendering ------------------------------------------------------------------------------------

def _compact(node: Node | None) -> str:
    """A CURIE for IRIs in a known namespace, else <iri>; literals as in Turtle."""
    if isinstance(node, URIRef):
        for prefix, ns in (*PREFIXES.items(), ("sh", str(SH))):
            local = node[len(ns):] if node.startswith(ns) else ""
            if local and all(ch.isalnum() or ch in "_-." for ch in local):
                return f"{prefix}:{local}"
        return f"<{node}>"
    if isinstance(node, Literal):
        return _literal_text(node)
    return "?" if node is None else f"_:{node}"


def _path_to_text(shapes: Graph, path: Node) -> str:
    if isinstance(path, URIRef):
        return _compact(path)
    if (path, RDF.first, None) in shapes:
        return "/".join(_path_to_text(shapes, p) for p in _list_items(shapes, path))
    for prop, fmt in ((SH.inversePath, "^{}"), (SH.zeroOrMorePath, "{}*"),
                      (SH.oneOrMorePath, "{}+"), (SH.zeroOrOnePath, "{}?")):
        inner = shapes.value(path, prop)
        if inner is not None:
            return fmt.format(_path_to_text(shapes, inner))
    alternatives = shapes.value(path, SH.alternativePath)
    if alternatives is not None:
        return "(" + "|".join(_path_to_text(shapes, p)
                              for p in _list_items(shapes, alternatives)) + ")"
    return _compact(path)


def _list_items(graph: Graph, head: Node | None) -> list[Node]:
    items: list[Node] = []
    while head is not None and head != RDF.nil and len(items) < 10_000:
        first = graph.value(head, RDF.first)
        if first is None:
            break
        items.append(first)
        head = graph.value(head, RDF.rest)
    return items


def _is_instance(graph: Graph, node: Node, cls: Node) -> bool:
    """A SHACL instance: typed ``cls`` or a subclass of it (rdfs:subClassOf in ``graph``)."""
    if isinstance(node, Literal):
        return False
    return any(t == cls or cls in graph.transitive_objects(t, RDFS.subClassOf)
               for t in graph.objects(node, RDF.type))


def _values(graph: Graph, focus: Node, path: Node | None) -> list[Node]:
    return sorted(graph.objects(focus, path), key=str) if isinstance(path, URIRef) else []


def _int(value: Node | None, default: int) -> int:
    try:
        return int(value) if isinstance(value, Literal) else default
    except (TypeError, ValueError):
        return default


def _literal_type(value: Literal) -> str:
    if value.language:
        return "rdf:langString"
    return _compact(value.datatype) if value.datatype else "xsd:string"


def _literal_text(value: Literal, limit: int = 80) -> str:
    text = str(value)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    text = '"' + text.replace('"', '\\"') + '"'
    if value.language:
        return f"{text}@{value.language}"
    if value.datatype and value.datatype != XSD.string:
        return f"{text}^^{_compact(value.datatype)}"
    return text


def _value_text(graph: Graph, value: Node) -> str:
    if isinstance(value, Literal):
        return _literal_text(value)
    if isinstance(value, BNode):
        for prop in _NAME_PROPERTIES:
            name = graph.value(value, prop)
            if isinstance(name, Literal):
                return f"[ {_literal_text(name, 60)} ]"
        return "[ ]"
    return f"<{value}>"


def _kind_of(value: Node | None) -> str:
    if isinstance(value, Literal):
        return "a literal"
    return "a blank node" if isinstance(value, BNode) else "an IRI"


def _node_id(node: Node) -> str:
    return f"_:{node}" if isinstance(node, BNode) else str(node)


def _focus_label(focus: str) -> str:
    return focus if focus.startswith("_:") else f"<{focus}>"


def _with_value(message: str, path: str | None, value: str | None) -> str:
    """The offending value in a curated message: 'eucaim:x value "CT" is not in ...'."""
    if value is None or value in message:
        return message
    if path and message.startswith(path + " "):
        return f"{path} value {value} {message[len(path) + 1:]}"
    return f"{message.rstrip('. ')} (value: {value})"


def _split_clause(text: str) -> tuple[str, str, str]:
    """Split "what is wrong: details" at the first ": " outside quoted values and IRIs."""
    quoted = False
    depth = 0
    for index, ch in enumerate(text):
        if ch == '"' and (index == 0 or text[index - 1] != "\\"):
            quoted = not quoted
        elif not quoted and ch in "<[":
            depth += 1
        elif not quoted and ch in ">]":
            depth = max(0, depth - 1)
        elif not quoted and depth == 0 and text.startswith(": ", index):
            return text[:index], ": ", text[index + 2:]
    return text, "", ""
