"""The web layer's pure parts, without a database: codes and description values in words,
highlight markup, facet links, pages, redirects after sign-in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from catalogue import web
from catalogue.search.mappings import load_definition
from catalogue.web import labels
from catalogue.web.auth import safe_next
from catalogue.web.present import Value, label_for, present
from catalogue.web.search import State, pages
from catalogue.web.site import marked

AUTHORITY = "http://publications.europa.eu/resource/authority/"
EUCAIM = "https://cancerimage.eu/ontology/EUCAIM#"


@pytest.fixture
def context() -> Iterator[Any]:
    app = Flask("web-test", static_folder=None)
    web.register(app)
    with app.test_request_context("/search?q=lung&conditions=C34.9&page=3"):
        yield app


@pytest.mark.parametrize(("iri", "label"), [
    (AUTHORITY + "access-right/NON_PUBLIC", "Non public"),
    (AUTHORITY + "country/ESP", "Spain"),
    (AUTHORITY + "data-theme/HEAL", "Health"),
    (AUTHORITY + "language/DEU", "German"),
    (AUTHORITY + "file-type/DCM", "DICOM"),
    (AUTHORITY + "frequency/ANNUAL", "Annual"),
    ("http://data.europa.eu/eli/reg/2025/327/oj", "Regulation (EU) 2025/327"),
    ("http://data.europa.eu/eli/dir/2016/680/oj", "Directive (EU) 2016/680"),
    (EUCAIM + "COM1001366", "Female"),
    (EUCAIM + "SPEC1000011", "EUCAIM SPEC1000011"),
    ("https://eucaim.github.io/eucaim_dcat_ap/releases/controlled-vocabularies/"
     "access-conditions/#IN_SITU_PROCESSING", "In situ processing"),
    ("https://hdeu-dcat.acceptance.data.health.europa.eu/resource/authority/"
     "publisher-type/ResearchInstitute", "Research institute"),
    ("https://example.org/a/very/long/path/" + "x" * 80, None),
])
def test_iris_in_words(iri: str, label: str | None) -> None:
    found = labels.iri(iri)
    if label is None:
        assert len(found) <= 64 and found.endswith("…") and "://" not in found
    else:
        assert found == label


def test_codes_in_words() -> None:
    assert labels.concept("conditions", "C34.9") == labels.concept("conditions",
                                                                   "snomed:93880001")
    assert labels.concept("conditions", "local:ONC-7") == "local:ONC-7"
    assert labels.concept("modalities", "CT") == "Computed Tomography"
    assert labels.country("DE") == "Germany" and labels.country("ZZ") == "ZZ"
    assert labels.byte_size(52_428_800_000) == "52.4 GB" and labels.byte_size(999) == "999 bytes"
    assert labels.access(None) == "Not stated"


def test_description_values_in_words() -> None:
    assert present({"en": "Lung", "de": "Lunge"}) == [Value("Lung", lang="en"),
                                                      Value("Lunge", lang="de")]
    assert present({"@value": "Texte", "@language": "fr"}) == [Value("Texte", lang="fr")]
    assert present([{"start": "2019", "end": "2023-06"}]) == [Value("2019 – 2023-06")]
    assert present(True) == [Value("Yes")] and present(12000) == [Value("12,000")]
    assert present(None) == present([]) == present({}) == []
    assert present(["a@b.org"], "email") == [Value("a@b.org", href="mailto:a@b.org")]
    publisher = present({"types": ["http://xmlns.com/foaf/0.1/Organization"],
                         "name": {"en": "Hospital", "es": "Hospital (es)"},
                         "homepage": ["https://h.example/"],
                         "contact_point": {"email": ["desk@h.example"]}}, "publisher")[0]
    assert (publisher.text, publisher.href, publisher.lang) == ("Hospital", "https://h.example/",
                                                                "en")
    rows = {row.label: row.values for row in publisher.parts}
    assert [v.text for v in rows["Also named"]] == ["Hospital (es)"]
    assert rows["Contact point"][0].text == "desk@h.example"  # known only by its address
    assert rows["Contact point"][0].href == "mailto:desk@h.example"
    assert "Type" not in rows  # rdf:type is not shown
    statement = present([{"@type": "dct:ProvenanceStatement",
                          "rdfs:label": {"@value": "From the PACS.", "@language": "en"}}])
    assert statement == [Value("From the PACS.", lang="en")]
    nested = present({"dct:isPartOf": {"@id": "https://x.example/series"}})[0]
    assert nested.parts[0].label == "Is part of"
    assert label_for("number_of_segmentations") == "Number of segmentations"
    assert label_for("dcat:spatialResolutionInMeters") == "Spatial resolution in meters"


def test_highlights_are_trusted_only_when_they_are_escaped_text_and_marks() -> None:
    assert str(marked("a <mark>lung</mark> &lt;b&gt;")) == "a <mark>lung</mark> &lt;b&gt;"
    assert str(marked('<mark>x</mark><img src=x onerror="1">')) == \
        "x&lt;img src=x onerror=&#34;1&#34;&gt;"
    assert marked(None) is None and marked("") is None


def test_facet_links_toggle_one_value_and_reset_the_page(context: Any) -> None:
    state = State.from_request()
    conditions = next(f for f in load_definition("datasets").facets if f.name == "conditions")
    modalities = next(f for f in load_definition("datasets").facets if f.name == "modalities")
    # C34.9 is selected as written; its bucket's key (the concept id) removes it
    assert state.toggled(conditions, "snomed:93880001").href() == "/search?q=lung"
    assert state.toggled(modalities, "CT").href() == \
        "/search?q=lung&conditions=C34.9&modalities=CT"
    assert state.hidden("q") == [("conditions", "C34.9")]
    assert state.replaced("page", "4").href() == "/search?q=lung&conditions=C34.9&page=4"


def test_page_numbers() -> None:
    assert pages(1, 1) == [1]
    assert pages(1, 9) == [1, 2, 3, None, 9]
    assert pages(5, 9) == [1, None, 3, 4, 5, 6, 7, None, 9]
    assert pages(9, 9) == [1, None, 7, 8, 9]
    assert pages(3, 5) == [1, 2, 3, 4, 5]


@pytest.mark.parametrize(("target", "expected"), [
    ("/datasets/x?y=1", "/datasets/x?y=1"), (None, "/"), ("", "/"), ("//evil.example", "/"),
    ("/\\evil.example", "/"), ("https://evil.example/", "/"), ("search", "/"),
    ("/x\r\nSet-Cookie: a=b", "/"),
])
def test_sign_in_returns_to_local_pages_only(context: Any, target: str | None,
                                             expected: str) -> None:
    assert safe_next(target) == expected
