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


IRIS = ("https://provider.example/dataset/a?x=1&y='2'#frag", "urn:uuid:1234",
        "https://example.org/dataset/é")


@pytest.mark.parametrize("fmt", list(rdf.EXPORT_FORMATS))
@pytest.mark.parametrize("live", [True, False])
def test_listing_statements_by_template_are_those_of_the_serializer(fmt: str,
                                                                     live: bool) -> None:
    """One dataset's dcat:dataset / dcat:record statements written by template parse to the
    same graph as Oxigraph's, in every format, with IRIs that need escaping; an IRI that is
    not one is refused by both."""
    from rdflib.compare import isomorphic

    catalog = "http://127.0.0.1:8080/dcat/catalog"
    media = rdf.EXPORT_FORMATS[fmt][0]
    for n, dataset in enumerate(IRIS):
        record = f"http://127.0.0.1:8080/dcat/records/{n}?a=1&b=é"
        made = rdf.listed(fmt, catalog, dataset if live else None, record)
        reference = rdf.links(catalog, [dataset] if live else [], [record], fmt)
        got = parse_rdf(b"".join(rdf.join(fmt, [made])), content_type=media)
        want = parse_rdf(b"".join(rdf.join(fmt, [reference])), content_type=media)
        assert len(got) == (2 if live else 1) and isomorphic(got, want)
    for bad in ('https://example.org/a"b', "https://example.org/a<b>"):
        with pytest.raises(ValueError):
            rdf.links(catalog, [bad], [catalog], fmt)
        with pytest.raises(ValueError):
            rdf.listed(fmt, catalog, bad, catalog)
