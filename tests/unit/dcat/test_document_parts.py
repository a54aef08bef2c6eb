"""A page is sent as its opening (the catalogue's own statements), runs of listing and
descriptions stored apart, and the closing: together exactly the document ``join`` makes."""

from __future__ import annotations

import pytest

from catalogue.dcat import export as rdf
from catalogue.dcat.formats import parse_rdf


def _fragment(subject: str, fmt: str) -> bytes:
    import pyoxigraph as ox

    return rdf.fragment([ox.Triple(ox.NamedNode(subject), ox.NamedNode("urn:p"),
                                   ox.Literal("v"))], fmt)


@pytest.mark.parametrize("fmt", list(rdf.EXPORT_FORMATS))
def test_opening_and_rest_make_the_joined_document(fmt: str) -> None:
    first = _fragment("urn:catalog", fmt)
    parts = [_fragment("urn:a", fmt), b"", _fragment("urn:b", fmt), b"", _fragment("urn:c", fmt)]
    whole = b"".join(rdf.join(fmt, [first, *parts]))
    split = rdf.opening(fmt, first) + b"".join(rdf.continued(fmt, parts[:2])) \
        + b"".join(rdf.continued(fmt, parts[2:])) + rdf.closing(fmt)
    assert split == whole
    graph = parse_rdf(split, content_type=rdf.EXPORT_FORMATS[fmt][0])
    assert len(graph) == 4
    # nothing after the opening: still one well-formed document
    alone = rdf.opening(fmt, first) + b"".join(rdf.continued(fmt, [])) + rdf.closing(fmt)
    assert alone == b"".join(rdf.join(fmt, [first]))
    assert len(parse_rdf(alone, content_type=rdf.EXPORT_FORMATS[fmt][0])) == 1


def test_the_opening_needs_a_first_part() -> None:
    with pytest.raises(ValueError):
        rdf.opening("jsonld", b"")
