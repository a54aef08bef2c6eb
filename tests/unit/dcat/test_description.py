"""The harvester's dict-indexed Description answers every lookup exactly like rdflib's Graph."""

from __future__ import annotations

from pathlib import Path

import pytest
from rdflib import BNode, Graph, Literal, URIRef

from catalogue.dcat.description import Description
from catalogue.dcat.formats import parse_rdf

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"


def _graphs() -> list[Graph]:
    files = sorted(p for p in DATA.rglob("*.ttl"))[:6]
    assert files, "the shared DCAT examples are in tests/data/dcat"
    return [parse_rdf(p.read_bytes(), filename=str(p)) for p in files]


@pytest.mark.parametrize("graph", _graphs(), ids=lambda g: f"{len(g)}-triples")
def test_every_pattern_answers_like_rdflib(graph: Graph) -> None:
    desc = Description(graph)
    assert len(desc) == len(graph) and set(desc) == set(graph)
    unknown = URIRef("urn:not-there")
    triples = list(graph)[:200]
    for s, p, o in [*triples, (unknown, unknown, unknown)]:
        for pattern in ((s, None, None), (s, p, None), (None, p, o), (None, None, o),
                        (s, None, o), (None, p, None), (s, p, o)):
            assert set(desc.triples(pattern)) == set(graph.triples(pattern)), pattern
            assert (pattern in desc) == (pattern in graph), pattern
        assert sorted(desc.objects(s, p)) == sorted(graph.objects(s, p))
        assert sorted(desc.predicates(s)) == sorted(set(graph.predicates(s)))
        assert sorted(desc.subjects(p, o)) == sorted(graph.subjects(p, o))
        assert sorted(desc.predicate_objects(s)) == sorted(graph.predicate_objects(s))
        assert sorted(desc.subject_objects(p)) == sorted(graph.subject_objects(p))
    assert set(desc.to_graph()) == set(graph)


def test_adding_a_triple_twice_keeps_one() -> None:
    node, value = BNode(), Literal("x", lang="en")
    desc = Description().add((node, URIRef("urn:p"), value)).add((node, URIRef("urn:p"), value))
    assert len(desc) == 1 and list(desc.objects(node, URIRef("urn:p"))) == [value]
