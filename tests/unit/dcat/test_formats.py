"""Format detection, safe parsing (XXE, entity bombs, remote contexts, size cap), serialising."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib.compare import isomorphic

from catalogue.dcat import formats
from catalogue.dcat.formats import RdfError, detect_format, parse_rdf, serialise
from catalogue.errors import ValidationError

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"
TURTLE = b"@prefix dct: <http://purl.org/dc/terms/> .\n<http://ex.org/d> dct:title \"T\"@en .\n"
NTRIPLES = b'<http://ex.org/d> <http://purl.org/dc/terms/title> "T"@en .\n'
RDFXML = b"""<?xml version="1.0"?>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dct="http://purl.org/dc/terms/">
  <rdf:Description rdf:about="http://ex.org/d"><dct:title xml:lang="en">T</dct:title>
  </rdf:Description>
</rdf:RDF>"""
JSONLD = json.dumps(
    {"@id": "http://ex.org/d", "http://purl.org/dc/terms/title": {"@value": "T", "@language": "en"}}
).encode()
TRIG = b"<http://ex.org/g> { <http://ex.org/d> <http://purl.org/dc/terms/title> \"T\"@en . }"
EXPECTED = {(URIRef("http://ex.org/d"), URIRef("http://purl.org/dc/terms/title"),
             Literal("T", lang="en"))}


def engines() -> list[str]:
    return ["rdflib", "oxigraph"] if formats.oxigraph_available() else ["rdflib"]


# -- detection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/turtle; charset=utf-8", "turtle"),
        ("application/rdf+xml", "xml"),
        ("application/ld+json", "json-ld"),
        ("application/json", "json-ld"),
        ("application/n-triples", "nt"),
        ("application/trig", "trig"),
    ],
)
def test_detect_by_content_type_first(content_type: str, expected: str) -> None:
    assert detect_format(b"whatever", content_type, "file.rdf" if expected != "xml" else "x.ttl") \
        == expected


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("catalogue.ttl", "turtle"),
        ("https://example.org/feed.rdf?page=2", "xml"),
        ("dump.jsonld", "json-ld"),
        ("dump.nt", "nt"),
        ("dump.trig", "trig"),
        ("ontology.owl", "xml"),
    ],
)
def test_detect_by_extension_when_no_usable_content_type(filename: str, expected: str) -> None:
    assert detect_format(b"", "application/octet-stream", filename) == expected


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (TURTLE, "turtle"),
        (NTRIPLES, "nt"),
        (RDFXML, "xml"),
        (b"\xef\xbb\xbf" + RDFXML, "xml"),
        (JSONLD, "json-ld"),
        (b"[ {\"@id\": \"x\"} ]", "json-ld"),
        (TRIG, "trig"),
        (b"[ a <http://www.w3.org/ns/dcat#Dataset> ] .", "turtle"),
        (b'<http://a> <http://b> "{ not a graph }" .', "nt"),
    ],
)
def test_detect_by_sniffing(content: bytes, expected: str) -> None:
    assert detect_format(content) == expected


def test_turtle_file_holding_trig_is_trig() -> None:
    assert detect_format(TRIG, filename="themes.ttl") == "trig"


# -- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("content", [TURTLE, NTRIPLES, RDFXML, JSONLD, TRIG])
def test_every_format_parses_to_the_same_graph(content: bytes, engine: str) -> None:
    graph = parse_rdf(content, engine=engine)
    assert set(graph) == EXPECTED


def test_mislabelled_document_is_read_as_what_it_is() -> None:
    assert set(parse_rdf(JSONLD, content_type="text/turtle")) == EXPECTED


@pytest.mark.parametrize("engine", engines())
def test_syntax_error_names_format_and_line(engine: str) -> None:
    bad = b"@prefix dct: <http://purl.org/dc/terms/> .\n\n<http://ex.org/d> dct:title \"T ;\n"
    with pytest.raises(RdfError) as caught:
        parse_rdf(bad, filename="bad.ttl", engine=engine)
    error = caught.value
    assert isinstance(error, ValidationError)
    assert error.code == "invalid_rdf" and error.status == 400
    assert error.message.startswith("invalid Turtle")
    assert error.line == 3 or (error.line is not None and error.line >= 3)
    assert error.details and error.details["format"] == "turtle"


def test_invalid_json_reports_line_and_column() -> None:
    with pytest.raises(RdfError, match=r"invalid JSON-LD: .* at line 2, column"):
        parse_rdf(b'{"@id": "x",\n  oops}', filename="x.jsonld")


def test_relative_iris_use_the_base_never_the_working_folder() -> None:
    graph = parse_rdf(b'<d> <http://purl.org/dc/terms/title> "T" .', content_type="text/turtle",
                      base="https://example.org/catalogue/")
    assert {str(s) for s in graph.subjects()} == {"https://example.org/catalogue/d"}
    graph = parse_rdf(b'<d> <http://purl.org/dc/terms/title> "T" .', content_type="text/turtle",
                      engine="rdflib")
    assert {str(s) for s in graph.subjects()} == {"http://localhost/d"}


@pytest.mark.parametrize(
    "path", sorted(p for p in DATA.rglob("*") if p.suffix in (".ttl", ".nt", ".jsonld")),
    ids=lambda p: str(p.relative_to(DATA)),
)
def test_oxigraph_and_rdflib_give_the_same_graph(path: Path) -> None:
    if not formats.oxigraph_available():
        pytest.skip("pyoxigraph is not installed")
    content = path.read_bytes()
    try:
        by_rdflib = parse_rdf(content, filename=path.name, engine="rdflib")
    except RdfError:
        pytest.skip("not an RDF document rdflib accepts")
    try:
        by_oxigraph = parse_rdf(content, filename=path.name, engine="oxigraph")
    except RdfError as error:  # the DCAT-AP context file itself is not valid JSON-LD 1.1
        assert path.name == "dcat-ap.jsonld", error.message
        return
    assert isomorphic(by_rdflib, by_oxigraph)


# -- RDF/XML safety ---------------------------------------------------------------------------

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dct="http://purl.org/dc/terms/">
  <rdf:Description rdf:about="http://ex.org/d"><dct:title>&secret;</dct:title></rdf:Description>
</rdf:RDF>"""

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"
         xmlns:dct="http://purl.org/dc/terms/">
  <rdf:Description rdf:about="http://ex.org/d"><dct:title>&lol9;</dct:title></rdf:Description>
</rdf:RDF>"""


@pytest.mark.parametrize("engine", engines())
def test_xxe_is_refused_without_reading_the_file(engine: str) -> None:
    with pytest.raises(RdfError) as caught:
        parse_rdf(XXE, content_type="application/rdf+xml", engine=engine)
    message = caught.value.message
    assert "external" in message and "never loaded" in message and "'secret'" in message
    assert "root:" not in message and "/bin/" not in message


def test_xxe_in_utf16_is_refused_too() -> None:
    with pytest.raises(RdfError, match="external"):
        parse_rdf(XXE.replace(b'version="1.0"', b'version="1.0" encoding="UTF-16"')
                  .decode().encode("utf-16"), filename="x.rdf")


def test_external_dtd_is_refused() -> None:
    doc = RDFXML.replace(b"<rdf:RDF", b'<!DOCTYPE rdf:RDF SYSTEM "http://evil.example/x.dtd">\n'
                         b"<rdf:RDF", 1)
    with pytest.raises(RdfError, match="external DTD"):
        parse_rdf(doc, filename="x.rdf")


def test_parameter_entities_are_refused() -> None:
    doc = RDFXML.replace(b"<rdf:RDF", b'<!DOCTYPE r [ <!ENTITY % p "x"> ]>\n<rdf:RDF', 1)
    with pytest.raises(RdfError, match="parameter entity"):
        parse_rdf(doc, filename="x.rdf")


@pytest.mark.parametrize("engine", engines())
def test_billion_laughs_is_refused(engine: str) -> None:
    with pytest.raises(RdfError, match="billion laughs"):
        parse_rdf(BILLION_LAUGHS, filename="bomb.rdf", engine=engine)


def test_quadratic_blowup_is_refused() -> None:
    big = "x" * 2000
    body = "&big;" * 6000
    doc = (f'<!DOCTYPE r [ <!ENTITY big "{big}"> ]>\n<rdf:RDF xmlns:rdf="http://www.w3.org/1999/'
           f'02/22-rdf-syntax-ns#" xmlns:dct="http://purl.org/dc/terms/"><rdf:Description '
           f'rdf:about="http://ex.org/d"><dct:title>{body}</dct:title></rdf:Description>'
           f"</rdf:RDF>").encode()
    with pytest.raises(RdfError, match="entity expansion would add"):
        parse_rdf(doc, filename="x.rdf")


@pytest.mark.parametrize("engine", engines())
def test_flat_internal_entities_still_work(engine: str) -> None:
    doc = b"""<?xml version="1.0"?>
<!DOCTYPE rdf:RDF [ <!ENTITY dct "http://purl.org/dc/terms/"> <!-- shorthand --> ]>
<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#" xmlns:dct="&dct;">
  <rdf:Description rdf:about="http://ex.org/d"><dct:title xml:lang="en">T</dct:title>
  <dct:source rdf:resource="&dct;x"/></rdf:Description>
</rdf:RDF>"""
    graph = parse_rdf(doc, filename="x.rdf", engine=engine)
    assert (URIRef("http://ex.org/d"), URIRef("http://purl.org/dc/terms/source"),
            URIRef("http://purl.org/dc/terms/x")) in graph


# -- JSON-LD contexts ---------------------------------------------------------------------------


def test_remote_context_is_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    import urllib.request

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a remote context was fetched")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    doc = json.dumps({"@context": "https://evil.example/context.jsonld", "@id": "x",
                      "title": "T"}).encode()
    for engine in engines():
        with pytest.raises(RdfError) as caught:
            parse_rdf(doc, filename="x.jsonld", engine=engine)
        assert "https://evil.example/context.jsonld" in caught.value.message
        assert "never fetched" in caught.value.message


def test_remote_import_and_nested_contexts_are_refused() -> None:
    doc = {"@context": {"@import": "https://evil.example/c.jsonld"}, "@id": "http://ex.org/x"}
    with pytest.raises(RdfError, match="never fetched"):
        parse_rdf(json.dumps(doc).encode(), filename="x.jsonld")
    doc = {"@context": {"p": "http://ex.org/"}, "@id": "http://ex.org/x",
           "p:child": {"@context": "http://evil.example/c", "@id": "http://ex.org/y"}}
    with pytest.raises(RdfError, match="evil.example"):
        parse_rdf(json.dumps(doc).encode(), filename="x.jsonld")


@pytest.mark.parametrize("engine", engines())
def test_shipped_dcat_ap_examples_context_is_used_offline(engine: str) -> None:
    path = DATA / "dcat-ap-3" / "example-bee-population-dataset-series-ordered.jsonld"
    graph = parse_rdf(path.read_bytes(), filename=path.name, engine=engine)
    dcat = "http://www.w3.org/ns/dcat#"
    ds = "https://data.gov.gr/id/dataset/"
    # both type-scoped contexts (Dataset and DatasetMemberOfADatasetSeries) apply
    assert (URIRef(ds + "BeePopulation2023"), URIRef(dcat + "prev"),
            URIRef(ds + "BeePopulation2022")) in graph
    assert (URIRef(ds + "BeePopulation2022"), URIRef(dcat + "inSeries"),
            URIRef("https://data.gov.gr/id/datasetseries/BeePopulation")) in graph
    path = DATA / "dcat-ap-3" / "example-bee-population-dataset-series-spatial-thessaloniki.jsonld"
    graph = parse_rdf(path.read_bytes(), filename=path.name, engine=engine)
    assert (URIRef(ds + "BeePopulation2022"), URIRef("http://purl.org/dc/terms/title"),
            Literal("Bee population 2022 in the region of Thessaloniki", lang="en")) in graph
    assert (URIRef(ds + "BeePopulation2022"), URIRef(dcat + "inSeries"), None) in graph


def test_shipped_context_files_match_the_test_data() -> None:
    library = formats.shipped_contexts()
    for name in ("dcat-ap.jsonld", "examples-context.jsonld"):
        shipped = json.loads((library.directory / name).read_text(encoding="utf-8"))
        assert shipped == json.loads((DATA / "dcat-ap-3" / name).read_text(encoding="utf-8"))
    assert library.get("http://semiceu.github.io/DCAT-AP/releases/3.0.0/context/dcat-ap.jsonld")
    assert library.get("https://example.org/unknown.jsonld") is None


# -- size cap -----------------------------------------------------------------------------------


@pytest.mark.parametrize("engine", engines())
@pytest.mark.parametrize("content", [TURTLE * 1, NTRIPLES, JSONLD, RDFXML, TRIG])
def test_triple_cap(content: bytes, engine: str) -> None:
    many = b"".join(
        f'<http://ex.org/d{i}> <http://purl.org/dc/terms/title> "T" .\n'.encode()
        for i in range(50)
    )
    with pytest.raises(RdfError, match="more than 10 triples"):
        parse_rdf(many, filename="x.nt", max_triples=10, engine=engine)
    assert len(parse_rdf(content, max_triples=1, engine=engine)) == 1


# -- serialising --------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", formats.FORMATS)
def test_serialise_round_trips(fmt: str) -> None:
    path = DATA / "eucaim" / "eucaim-catalogue.ttl"
    graph = parse_rdf(path.read_bytes(), filename=path.name)
    data = serialise(graph, fmt)
    assert isinstance(data, bytes)
    again = parse_rdf(data, content_type=formats.MEDIA_TYPES[fmt])
    assert isomorphic(graph, again)


def test_serialise_rejects_unknown_format() -> None:
    with pytest.raises(ValueError, match="unknown RDF format"):
        serialise(Graph(), "n3")
