"""The compiled shapes find exactly what plain pySHACL finds with the original shapes.

The validator compiles the shapes for speed (merged and split shapes, large sh:in lists as a
regular expression, range constraints checked in Python); each of its results is mapped back to
the original shape and constraint. Here plain ``pyshacl.validate`` runs on the original shapes
and both sets of results must be equal, before the range decision and the wording.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyshacl
import pytest
from rdflib import BNode, Graph, Literal, URIRef
from rdflib import namespace as ns
from rdflib.term import Node

from catalogue.dcat.validation import get_validator

from .records import DATASET, DCAT, DCT, DICOM, EUCAIM, FOAF, HEALTH, HOSPITAL, complete_record

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"
SH = ns.SH

Result = tuple[Node, Node, Node, Node | None]


def broken_record() -> Graph:
    """The complete record with many kinds of mistakes at once."""
    graph = complete_record()
    graph.set((DATASET, DCT.accessRights, URIRef("http://example.org/open")))
    graph.set((DATASET, EUCAIM.hasImageModality, Literal("CT")))
    graph.add((DATASET, EUCAIM.hasAnnotationLabel, EUCAIM.BP9999999))
    graph.add((DATASET, DCAT.version, Literal("2.0")))
    graph.set((DATASET, HEALTH.numberOfRecords, Literal("many")))
    graph.set((DATASET, DCT.issued, Literal("2024")))
    graph.remove((DATASET, DCT.title, None))
    graph.set((DATASET, DCT.publisher, Literal("Example Hospital")))
    graph.remove((HOSPITAL, FOAF.name, None))
    graph.set((DICOM, DCT.rights, URIRef("http://example.org/rights")))
    graph.set((DICOM, DCT["format"], URIRef("http://example.org/dicom")))
    contact = graph.value(DATASET, DCAT.contactPoint)
    assert isinstance(contact, BNode)
    graph.remove((contact, ns.RDF.type, None))
    graph.add((contact, ns.RDF.type, DCT.Agent))
    return graph


def document(path: Path) -> Callable[[], Graph]:
    return lambda: Graph().parse(path)


DOCUMENTS: dict[str, Callable[[], Graph]] = {
    "complete": complete_record,
    "broken": broken_record,
    **{str(p.relative_to(DATA)): document(p) for p in sorted(DATA.rglob("*.ttl"))},
}


def plain_results(shapes: Graph, data: Graph) -> set[Result]:
    usable = Graph()
    for triple in shapes:
        usable.add(triple)
    # DCAT-AP 3.0.1 refers to property shapes it does not define; plain pySHACL stops on them.
    for shape, prop in list(usable.subject_objects(SH.property)):
        if (prop, SH.path, None) not in usable:
            usable.remove((shape, SH.property, prop))
    _conforms, report, _text = pyshacl.validate(data, shacl_graph=usable)
    return {(report.value(r, SH.focusNode), report.value(r, SH.sourceConstraintComponent),
             report.value(r, SH.sourceShape), report.value(r, SH.value))
            for r in report.subjects(ns.RDF.type, SH.ValidationResult)}


@pytest.mark.slow
@pytest.mark.parametrize(("profiles", "strict"), [
    (("dcat-ap-3", "healthdcat-ap", "eucaim"), False),
    (("dcat-ap-3", "healthdcat-ap", "eucaim"), True),
    (("dcat-ap-3", "health-ri"), False),
])
def test_compiled_shapes_find_what_pyshacl_finds(profiles: tuple[str, ...], strict: bool) -> None:
    validator = get_validator(profiles, strict_ranges=strict)
    for name, make in DOCUMENTS.items():
        work = Graph()
        for triple in make():
            work.add(triple)
        for subject, cls in list(work.subject_objects(ns.RDF.type)):
            for sup in validator._supertypes.get(cls, ()):
                work.add((subject, ns.RDF.type, sup))
        ours = {(r.focus, r.component, r.shape, r.value)
                for r in validator._run(work) + validator._check_ranges(work)}
        assert ours == plain_results(validator._shapes, work), name
