"""The DCAT-AP 3.0.1 (and 2.1.1) examples of SEMICeu (tests/data/dcat/dcat-ap-3, dcat-ap-2)."""

from __future__ import annotations

import pytest
from rdflib import URIRef

from catalogue.dcat.validation import Validator, get_validator

from .conftest import find, load, violations

BEES = URIRef("https://data.gov.gr/id/dataset/BeePopulation")
AGENCY = "https://agencies.gov.gr/id/GreekEnvironmentAgency"


def test_bee_population_conforms_to_dcat_ap_3(dcat_ap_validator: Validator) -> None:
    # Title and description are DCAT-AP 3's only mandatory dataset properties. The publisher
    # is an external IRI without rdf:type: accepted as a foaf:Agent (the range decision).
    issues = dcat_ap_validator.validate_dataset(load("dcat-ap-3/example-bee-population.ttl"),
                                                BEES)
    assert issues == []


def test_strict_ranges_report_the_untyped_external_publisher() -> None:
    strict = get_validator(("dcat-ap-3",), strict_ranges=True)
    issues = strict.validate_dataset(load("dcat-ap-3/example-bee-population.ttl"), BEES)
    [issue] = issues
    assert (issue.severity, issue.path, issue.value) == ("violation", "dct:publisher", AGENCY)
    assert issue.message == f"dct:publisher value <{AGENCY}> has no rdf:type: expected a foaf:Agent"


def test_minimal_bee_population_lacks_the_eucaim_mandatory_properties(
        validator: Validator) -> None:
    issues = validator.validate_dataset(load("dcat-ap-3/example-bee-population.ttl"), BEES)
    on_dataset = {i.path for i in violations(issues) if i.focus == str(BEES)}
    assert on_dataset == {
        "dct:identifier", "dcat:version", "eucaim:interoperabilityLevel", "dcat:distribution",
        "dcat:contactPoint", "dcat:theme", "healthdcatap:healthCategory", "dct:type",
        "dct:accessRights", "dcatap:applicableLegislation", "healthdcatap:hasStructuredData",
        "healthdcatap:numberOfUniqueIndividuals", "healthdcatap:numberOfRecords",
        "eucaim:hasBirthSex", "eucaim:hasCondition", "eucaim:collectionMethod",
        "eucaim:hasImageModality", "eucaim:hasEquipmentManufacturer", "eucaim:hasImageBodyPart",
        "dcat:keyword", "dct:provenance"}
    assert all(" is missing" in i.message for i in violations(issues))
    # The publisher is only an IRI: EUCAIM needs its name and contact point in the record.
    on_publisher = {i.path for i in violations(issues) if i.focus == AGENCY}
    assert on_publisher == {"foaf:name", "cv:contactPoint"}
    [name] = [i for i in issues if i.focus == AGENCY and i.path == "foaf:name"]
    assert name.describe() == (
        f"foaf:name is missing on <{AGENCY}> (the dct:publisher of <{BEES}>): "
        "the publisher needs a name")
    # Title and description are present and in English.
    assert not find(issues, "dct:title") and not find(issues, "dct:description")
    # Recommended properties are warnings, the HDAB too (EHDS transition).
    assert find(issues, "healthdcatap:hdab", "warning")
    assert find(issues, "dct:language", "warning")


@pytest.mark.parametrize("name", ["example-bee-population-2022-2023.ttl",
                                  "example-bee-populaton-2022-2023.ttl"])
def test_two_yearly_datasets_conform_to_dcat_ap_3(dcat_ap_validator: Validator,
                                                  name: str) -> None:
    assert dcat_ap_validator.validate(load(f"dcat-ap-3/{name}")) == []


def test_dataset_series_document(dcat_ap_validator: Validator) -> None:
    # The series document only links the yearly datasets (described in another document) and
    # gives the series a title but no description, which DCAT-AP 3 requires.
    issues = dcat_ap_validator.validate(load("dcat-ap-3/example-bee-population-dataset-series.ttl"))
    series = "https://data.gov.gr/id/datasetseries/BeePopulation"
    [on_series] = [i for i in issues if i.focus == series]
    assert on_series.path == "dct:description"
    assert on_series.message == "dct:description is missing (at least 1 required)"
    yearly = {(i.focus.rsplit("/", 1)[1], i.path) for i in issues if i.focus != series}
    assert yearly == {(y, p) for y in ("BeePopulation2022", "BeePopulation2023")
                      for p in ("dct:title", "dct:description")}


def test_a_dataset_in_a_series_is_validated_without_the_series(
        dcat_ap_validator: Validator) -> None:
    # validate_dataset stops at other records: the series' missing description is not the
    # dataset's problem, and the series (typed elsewhere) counts as an external reference.
    document = load("dcat-ap-3/example-bee-population-dataset-series.ttl")
    for year in ("2022", "2023"):
        document += load("dcat-ap-3/example-bee-population-2022-2023.ttl")
        node = URIRef(f"https://data.gov.gr/id/dataset/BeePopulation{year}")
        assert dcat_ap_validator.validate_dataset(document, node) == []


@pytest.mark.parametrize("name", ["dcat-ap-2.1.1-example1.nt", "dcat-ap-2.1.1-example2.nt"])
def test_dcat_ap_2_examples_conform_to_dcat_ap_3(dcat_ap_validator: Validator,
                                                 name: str) -> None:
    assert dcat_ap_validator.validate(load(f"dcat-ap-2/{name}")) == []
