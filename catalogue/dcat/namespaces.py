"""RDF namespaces of DCAT-AP 3, HealthDCAT-AP and EUCAIM-DCAT-AP, and their aliases.

Namespaces drift in the wild (see ``specs/eucaim-dcat-ap/SOURCE.md``). Every alias listed in
:data:`ALIASES` is accepted on input and rewritten to its canonical namespace by
:func:`canonicalise_graph`; everything we produce uses the canonical namespaces only.
"""

from __future__ import annotations

import functools
import re

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import OWL, RDF, RDFS, XSD, Namespace
from rdflib.term import Node

__all__ = [
    "ADMS",
    "ALIASES",
    "CSVW",
    "CV",
    "DCAT",
    "DCATAP",
    "DCT",
    "DPV",
    "DPV_PD",
    "DQV",
    "ELI",
    "EUCAIM",
    "FOAF",
    "GEODCATAP",
    "HEALTHDCATAP",
    "HYDRA",
    "LOCN",
    "OA",
    "ODRL",
    "OWL",
    "PREFIXES",
    "PROV",
    "RDF",
    "RDFS",
    "SCHEMA",
    "SKOS",
    "SPDX",
    "TIME",
    "VCARD",
    "XSD",
    "bind_prefixes",
    "canonical_iri",
    "canonicalise_graph",
    "compact",
    "expand",
]

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
ADMS = Namespace("http://www.w3.org/ns/adms#")
DCATAP = Namespace("http://data.europa.eu/r5r/")
HEALTHDCATAP = Namespace("http://healthdataportal.eu/ns/health#")
EUCAIM = Namespace("https://cancerimage.eu/ontology/EUCAIM#")
SKOS = Namespace("http://www.w3.org/2004/02/skos/core#")
PROV = Namespace("http://www.w3.org/ns/prov#")
ODRL = Namespace("http://www.w3.org/ns/odrl/2/")
SPDX = Namespace("http://spdx.org/rdf/terms#")
HYDRA = Namespace("http://www.w3.org/ns/hydra/core#")
SCHEMA = Namespace("http://schema.org/")
LOCN = Namespace("http://www.w3.org/ns/locn#")
DQV = Namespace("http://www.w3.org/ns/dqv#")
TIME = Namespace("http://www.w3.org/2006/time#")
CV = Namespace("http://data.europa.eu/m8g/")  # SEMIC Core Vocabularies (cv:ContactPoint)
GEODCATAP = Namespace("http://data.europa.eu/930/")
DPV = Namespace("https://w3id.org/dpv#")
DPV_PD = Namespace("https://w3id.org/dpv/pd#")
ELI = Namespace("http://data.europa.eu/eli/ontology#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
OA = Namespace("http://www.w3.org/ns/oa#")

#: prefix → canonical namespace, used to bind prefixes on output and to compact IRIs in
#: JSON views (``fields``) and problem messages.
PREFIXES: dict[str, str] = {
    "dcat": str(DCAT),
    "dct": str(DCT),
    "foaf": str(FOAF),
    "vcard": str(VCARD),
    "adms": str(ADMS),
    "dcatap": str(DCATAP),
    "healthdcatap": str(HEALTHDCATAP),
    "eucaim": str(EUCAIM),
    "skos": str(SKOS),
    "prov": str(PROV),
    "odrl": str(ODRL),
    "spdx": str(SPDX),
    "hydra": str(HYDRA),
    "schema": str(SCHEMA),
    "locn": str(LOCN),
    "dqv": str(DQV),
    "time": str(TIME),
    "cv": str(CV),
    "geodcatap": str(GEODCATAP),
    "dpv": str(DPV),
    "dpv-pd": str(DPV_PD),
    "eli": str(ELI),
    "csvw": str(CSVW),
    "oa": str(OA),
    "rdf": str(RDF),
    "rdfs": str(RDFS),
    "owl": str(OWL),
    "xsd": str(XSD),
}

#: alias namespace → canonical namespace. Longest aliases first, so that prefix matching
#: always picks the most specific one.
ALIASES: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            # HealthDCAT-AP as used by the EUCAIM examples; canonical is the Release 5+
            # namespace also used by GDI and ckanext-dcat.
            ("https://w3id.org/healthdcat-ap#", str(HEALTHDCATAP)),
            # vCard without "/ns" (a frequent typo in harvested data).
            ("http://www.w3.org/2006/vcard#", str(VCARD)),
            # EUCAIM hyper-ontology class pages linked from the specification.
            ("https://hyperontology.eucaim.cancerimage.eu/#", str(EUCAIM)),
        ),
        key=lambda pair: -len(pair[0]),
    )
)
_ALIAS_PREFIXES = tuple(alias for alias, _ in ALIASES)
_LOCAL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]*$|^$")


def canonical_iri(iri: str) -> str:
    """``iri`` with an alias namespace replaced by its canonical namespace."""
    if iri.startswith(_ALIAS_PREFIXES):
        for alias, canonical in ALIASES:
            if iri.startswith(alias):
                return canonical + iri[len(alias) :]
    return iri


def _canonical_term(term: Node) -> Node:
    if isinstance(term, URIRef):
        if str.startswith(term, _ALIAS_PREFIXES):
            return URIRef(canonical_iri(str(term)))
    elif isinstance(term, Literal) and term.datatype is not None:
        if str.startswith(term.datatype, _ALIAS_PREFIXES):
            return Literal(
                str(term), datatype=URIRef(canonical_iri(str(term.datatype)))
            )
    return term


def canonicalise_graph(graph: Graph) -> Graph:
    """Rewrite alias IRIs (subjects, predicates, objects, datatypes) in place; return ``graph``.

    Prefixes bound to an alias namespace are re-bound to the canonical one.
    """
    changed: list[tuple[tuple[Node, Node, Node], tuple[Node, Node, Node]]] = []
    for triple in graph:
        new = (
            _canonical_term(triple[0]),
            _canonical_term(triple[1]),
            _canonical_term(triple[2]),
        )
        if new != triple:
            changed.append((triple, new))
    for old, _new in changed:
        graph.remove(old)
    for _old, new in changed:
        graph.add(new)
    for prefix, namespace in list(graph.namespaces()):
        if str(namespace).startswith(_ALIAS_PREFIXES):
            graph.bind(prefix, canonical_iri(str(namespace)), override=True, replace=True)
    return graph


def bind_prefixes(graph: Graph) -> Graph:
    """Bind the canonical prefixes of :data:`PREFIXES` on ``graph``; return it."""
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace, override=True, replace=True)
    return graph


@functools.lru_cache(maxsize=4096)
def compact(iri: str) -> str:
    """``prefix:local`` for IRIs in a known namespace, else the IRI itself."""
    for prefix, namespace in PREFIXES.items():
        if iri.startswith(namespace):
            local = iri[len(namespace) :]
            if _LOCAL_NAME.match(local):
                return f"{prefix}:{local}"
    return iri


def expand(name: str) -> str:
    """Inverse of :func:`compact`: ``prefix:local`` with a known prefix → full IRI."""
    prefix, sep, local = name.partition(":")
    if sep and not local.startswith("//") and prefix in PREFIXES:
        return PREFIXES[prefix] + local
    return name
