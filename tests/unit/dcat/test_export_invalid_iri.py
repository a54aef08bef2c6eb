"""A stored value that is not a valid IRI never fails an export page: that triple is left out
and logged (without the value), the rest of the dataset is exported."""

from __future__ import annotations

import logging

import pytest
from rdflib import Literal, URIRef

from catalogue.dcat import export as rdf
from catalogue.dcat.namespaces import DCT, HEALTHDCATAP

DATASET = URIRef("https://example.org/dataset/1")


def test_invalid_iri_is_left_out_and_logged_without_the_value(
        caplog: pytest.LogCaptureFixture) -> None:
    graph = [(DATASET, DCT.title, Literal("Lung CT", lang="en")),
             (DATASET, HEALTHDCATAP.healthCategory, URIRef("IMAGING")),
             (DATASET, DCT.identifier, Literal("ds-1"))]
    with caplog.at_level(logging.WARNING):
        triples = rdf.ox_triples(graph, "abc123")
    assert len(triples) == 2
    body = rdf.fragment(triples, "nt").decode()
    assert "Lung CT" in body and "ds-1" in body and "IMAGING" not in body
    assert any("abc123" in r.getMessage() and "1 triple" in r.getMessage()
               for r in caplog.records)
    assert not any("IMAGING" in r.getMessage() for r in caplog.records)
