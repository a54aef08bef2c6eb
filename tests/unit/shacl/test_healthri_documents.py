"""Health-RI's example and negative test documents (tests/data/dcat/health-ri).

The negative documents were written by Health-RI for their shapes, so they are checked with the
``health-ri`` profile (plus DCAT-AP 3); the default EUCAIM profiles are checked too.
"""

from __future__ import annotations

from rdflib import URIRef

from catalogue.dcat.validation import Validator

from .conftest import find, load, violations

DATASET = URIRef("http://example.com/dataset")


def paths(issues: list) -> set[str | None]:
    return {i.path for i in violations(issues)}


def test_example_dataset_conforms_to_health_ri(healthri_validator: Validator) -> None:
    issues = healthri_validator.validate(load("health-ri/example-dataset.ttl"))
    assert healthri_validator.conforms(issues)
    # Its contact points are untyped blank nodes: the range decision makes that a warning.
    assert issues
    assert {(i.severity, i.path) for i in issues} == {("warning", "dcat:contactPoint")}
    assert all("has no rdf:type" in i.message and "vcard:Kind" in i.message for i in issues)


def test_other_health_ri_examples_conform(healthri_validator: Validator) -> None:
    for name in ("example-distribution.ttl", "example-catalog.ttl", "example-dataservice.ttl"):
        issues = healthri_validator.validate(load(f"health-ri/{name}"))
        assert issues == [], name


def test_missing_description_is_named(healthri_validator: Validator) -> None:
    issues = healthri_validator.validate_dataset(
        load("health-ri/invalid/dataset-nodescription.ttl"), DATASET)
    [issue] = find(issues, "dct:description")
    assert issue.message == "dct:description is missing (at least 1 required)"
    assert issue.focus == str(DATASET)
    assert issue.describe() == \
        "dct:description is missing (at least 1 required) on <http://example.com/dataset>"
    assert not healthri_validator.conforms(issues)


def test_missing_description_with_eucaim_profiles(validator: Validator) -> None:
    issues = validator.validate_dataset(
        load("health-ri/invalid/dataset-nodescription.ttl"), DATASET)
    [issue] = find(issues, "dct:description")
    assert issue.message.startswith("dct:description is missing")
    assert "English" in issue.message  # the EUCAIM wording wins over the generic one


def test_dataset_without_license_names_its_missing_properties(
        healthri_validator: Validator) -> None:
    # Upstream this file tested a mandatory dataset licence (Health-RI core v1). The Health-RI
    # v2 shapes, like HealthDCAT-AP and EUCAIM-DCAT-AP v2, put dct:license on distributions,
    # so the report names what v2 requires and this document lacks.
    issues = healthri_validator.validate_dataset(
        load("health-ri/invalid/dataset-nolicense.ttl"), DATASET)
    assert paths(issues) == {"dct:accessRights", "dcatap:applicableLegislation", "dcat:keyword",
                             "foaf:mbox", "foaf:homepage"}
    assert not find(issues, "dct:description")
    for prop in ("dct:accessRights", "dcatap:applicableLegislation", "dcat:keyword"):
        [issue] = find(issues, prop)
        assert issue.message == f"{prop} is missing (at least 1 required)"
    nested = find(issues, "foaf:mbox")
    assert {i.location for i in nested} == {
        "the dct:creator of <http://example.com/dataset>",
        "the dct:publisher of <http://example.com/dataset>"}
    assert all(i.describe().startswith("foaf:mbox is missing (at least 1 required) on the dct:")
               for i in nested)


def test_wrongly_typed_publisher_and_contact_point(healthri_validator: Validator) -> None:
    issues = healthri_validator.validate_dataset(
        load("health-ri/invalid/example-dataset-bad.ttl"),
        URIRef("http://example.com/dataset/AAA"))
    [publisher] = find(issues, "dct:publisher")
    assert publisher.message == ('dct:publisher value [ "Bad non-conforming publisher" ] has the '
                                 'wrong class: it is a vcard:Kind, expected a foaf:Agent')
    assert publisher.value is not None and publisher.value.startswith("_:")
    [contact] = find(issues, "dcat:contactPoint")
    assert "has the wrong class" in contact.message
    assert "foaf:agent" in contact.message  # the misspelt class is shown as given
    # The contact point does not conform to hri:KindShape: the report says why, not just that.
    email = [i for i in find(issues, "vcard:hasEmail")
             if i.location == "the dcat:contactPoint of <http://example.com/dataset/AAA>"]
    assert email and email[0].message == "vcard:hasEmail is missing (at least 1 required)"
    assert not [i for i in issues if "does not conform" in i.message]


def test_malformed_second_dataset_in_the_bad_document(healthri_validator: Validator) -> None:
    bbb = URIRef("http://example.com/dataset/BBB")
    issues = healthri_validator.validate_dataset(
        load("health-ri/invalid/example-dataset-bad.ttl"), bbb)
    assert {"dct:identifier", "dct:accessRights", "dcat:theme", "dct:creator"} <= paths(issues)
    # Only BBB and what it reaches are reported, not dataset AAA of the same document.
    assert all("AAA" not in i.describe() for i in issues)


def test_invalid_documents_fail_the_default_profiles(validator: Validator) -> None:
    for name in ("dataset-nodescription.ttl", "dataset-nolicense.ttl"):
        issues = validator.validate_dataset(load(f"health-ri/invalid/{name}"), DATASET)
        assert not validator.conforms(issues)
        assert {"dct:accessRights", "dcatap:applicableLegislation"} <= paths(issues)


def test_theme_outside_the_eucaim_value_set_is_reported_with_its_value(
        validator: Validator) -> None:
    issues = validator.validate_dataset(load("health-ri/example-dataset.ttl"), DATASET)
    [theme] = find(issues, "dcat:theme")
    assert theme.value == "http://www.wikidata.org/entity/Q1141613"
    assert theme.message.startswith(
        "dcat:theme value <http://www.wikidata.org/entity/Q1141613> is not in the value set")
