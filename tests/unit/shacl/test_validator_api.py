"""The validator's contract with the harvester, and the shapes files it loads."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rdflib import Graph, Literal, URIRef
from rdflib import namespace as ns

from catalogue.dcat.validation import (
    DEFAULT_PROFILES,
    PROFILES,
    Issue,
    Validator,
    get_validator,
)

from .conftest import load
from .records import DATASET, DCAT, DCT, complete_record

SHAPES = Path(__file__).resolve().parents[3] / "ontologies" / "shacl"
EUCAIM_SHAPES = SHAPES / "eucaim-dcat-ap-2.shacl.ttl"


def test_get_validator_is_a_process_wide_cache() -> None:
    assert get_validator() is get_validator(DEFAULT_PROFILES)
    assert get_validator(("dcat-ap-3",)) is get_validator(["dcat-ap-3"])
    assert get_validator(("dcat-ap-3",)) is not get_validator()
    assert get_validator(("dcat-ap-3",), strict_ranges=True) is not get_validator(("dcat-ap-3",))
    assert get_validator().profiles == ("dcat-ap-3", "healthdcat-ap", "eucaim")


def test_unknown_profile_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown SHACL profile"):
        Validator(("dcat-ap-3", "dcat-ap-99"))


def test_issue_is_a_frozen_value() -> None:
    issue = Issue("violation", "http://ex.org/ds", "dct:title", "dct:title is missing")
    with pytest.raises(dataclasses.FrozenInstanceError):
        issue.severity = "warning"  # type: ignore[misc]
    assert (issue.value, issue.shape, issue.location) == (None, None, None)


@pytest.mark.parametrize(("message", "location", "expected"), [
    ("dct:description is missing (at least 1 required)", None,
     "dct:description is missing (at least 1 required) on <http://ex.org/ds>"),
    ("dcat:version is missing: give the version, e.g. \"1.0.0\".", None,
     "dcat:version is missing on <http://ex.org/ds>: give the version, e.g. \"1.0.0\""),
    ('dct:type value "a: b" is not in the value set: use x', None,
     'dct:type value "a: b" is not in the value set on <http://ex.org/ds>: use x'),
    ("foaf:name is missing", "the dct:publisher of <http://ex.org/ds>",
     "foaf:name is missing on the dct:publisher of <http://ex.org/ds>"),
])
def test_describe_reads_as_one_sentence(message: str, location: str | None,
                                        expected: str) -> None:
    issue = Issue("violation", "http://ex.org/ds", None, message, location=location)
    assert issue.describe() == expected


def test_describe_blank_node_focus() -> None:
    assert Issue("warning", "_:b0", "foaf:name", "foaf:name is missing").describe() == \
        "foaf:name is missing on _:b0"


def test_conforms_ignores_warnings_and_infos(validator: Validator) -> None:
    warning = Issue("warning", "http://ex.org/ds", "foaf:page", "foaf:page is recommended")
    info = Issue("info", "http://ex.org/ds", None, "note")
    violation = Issue("violation", "http://ex.org/ds", "dct:title", "dct:title is missing")
    assert validator.conforms([])
    assert validator.conforms([warning, info])
    assert not validator.conforms([warning, violation])


def test_validate_dataset_reports_only_that_record(healthri_validator: Validator) -> None:
    document = load("health-ri/invalid/example-dataset-bad.ttl")
    whole = healthri_validator.validate(document)
    aaa = healthri_validator.validate_dataset(document, URIRef("http://example.com/dataset/AAA"))
    bbb = healthri_validator.validate_dataset(document, URIRef("http://example.com/dataset/BBB"))
    assert {i.describe() for i in aaa} | {i.describe() for i in bbb} == \
        {i.describe() for i in whole}
    assert not {i.describe() for i in aaa} & {i.describe() for i in bbb}


def test_unknown_dataset_node(validator: Validator) -> None:
    [issue] = validator.validate_dataset(complete_record(), URIRef("http://ex.org/none"))
    assert issue.severity == "violation"
    assert "says nothing about this dataset" in issue.message


def test_untyped_dataset_is_validated_as_a_dataset(validator: Validator) -> None:
    graph = complete_record()
    graph.remove((DATASET, ns.RDF.type, DCAT.Dataset))
    issues = validator.validate_dataset(graph, DATASET)
    assert [(i.severity, i.path, i.message) for i in issues] == [
        ("violation", "rdf:type", "rdf:type dcat:Dataset is missing")]


def test_validation_does_not_change_the_description(validator: Validator) -> None:
    graph = complete_record()
    graph.remove((DATASET, DCT.title, None))
    before = set(graph)
    validator.validate_dataset(graph, DATASET)
    validator.validate(graph)
    assert set(graph) == before


def test_concurrent_validations_agree(validator: Validator) -> None:
    graph = complete_record()
    graph.set((DATASET, DCAT.version, Literal("1.0")))
    graph.add((DATASET, DCAT.version, Literal("2.0")))
    expected = validator.validate_dataset(graph, DATASET)
    assert expected
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: validator.validate_dataset(graph, DATASET), range(8)))
    assert all(r == expected for r in results)


def test_every_shapes_file_is_loaded_and_attributed() -> None:
    used = {f for profile in PROFILES.values() for f in profile.files} | {"class-hierarchy.ttl"}
    present = {str(p.relative_to(SHAPES)) for p in SHAPES.rglob("*.ttl")}
    assert used == present
    sources = (SHAPES / "SOURCES.md").read_text()
    assert all(f"`{name}`" in sources for name in present)


def test_every_eucaim_constraint_has_a_message() -> None:
    shapes = Graph().parse(EUCAIM_SHAPES)
    sh = ns.SH
    constrained = {s for s, p, _o in shapes
                   if p in (sh.minCount, sh.maxCount, sh.datatype, sh.nodeKind, sh.pattern,
                            sh["in"], sh["or"], sh.qualifiedValueShape)}
    # Shapes nested in sh:or / sh:qualifiedValueShape are worded by the shape that uses them.
    nested = {o for _s, p, o in shapes if p in (ns.RDF.first, sh.qualifiedValueShape)}
    for shape in constrained - nested:
        messages = [m for m in shapes.objects(shape, sh.message)
                    if isinstance(m, Literal) and m.language == "en"]
        assert messages, shape


def test_every_shape_of_every_profile_loads() -> None:
    for name in PROFILES:
        assert get_validator((name,)).validate(Graph()) == []
