"""EUCAIM-DCAT-AP v2 (ontologies/shacl/eucaim-dcat-ap-2.shacl.ttl) with the default profiles."""

from __future__ import annotations

import pytest
from rdflib import BNode, Graph, Literal, URIRef
from rdflib import namespace as ns
from rdflib.term import Node

from catalogue.dcat.validation import Issue, Validator

from .conftest import find, violations
from .records import (
    CV,
    DATASET,
    DCAT,
    DCATAP,
    DCT,
    DICOM,
    EUCAIM,
    FOAF,
    HEALTH,
    HEALTH_W3ID,
    HOSPITAL,
    VCARD,
    canonicalise_aliases,
    complete_record,
)

ACCESS_RIGHT = "http://publications.europa.eu/resource/authority/access-right/"


def check(validator: Validator, graph: Graph) -> list[Issue]:
    return validator.validate_dataset(graph, DATASET)


def replace(graph: Graph, subject: Node, predicate: URIRef, *values: Node) -> Graph:
    """``graph`` with the values of ``predicate`` on ``subject`` replaced by ``values``."""
    graph.remove((subject, predicate, None))
    for value in values:
        graph.add((subject, predicate, value))
    return graph


def only_violation(issues: list[Issue]) -> Issue:
    found = violations(issues)
    assert len(found) == 1, [i.describe() for i in found]
    return found[0]


def test_complete_record_conforms_without_any_issue(validator: Validator) -> None:
    issues = check(validator, complete_record())
    assert issues == [], [i.describe() for i in issues]
    assert validator.conforms(issues)


def test_complete_record_conforms_in_whole_document_validation(validator: Validator) -> None:
    assert validator.validate(complete_record()) == []


MANDATORY = [
    DCT.identifier, DCT.title, DCT.description, DCAT.version, EUCAIM.interoperabilityLevel,
    DCAT.distribution, DCAT.contactPoint, DCAT.theme, HEALTH.healthCategory, DCT.type,
    DCT.accessRights, DCATAP.applicableLegislation, DCT.publisher, HEALTH.hasStructuredData,
    HEALTH.numberOfUniqueIndividuals, HEALTH.numberOfRecords, EUCAIM.hasBirthSex,
    EUCAIM.hasCondition, EUCAIM.collectionMethod, EUCAIM.hasImageModality,
    EUCAIM.hasEquipmentManufacturer, EUCAIM.hasImageBodyPart, DCAT.keyword, DCT.provenance,
]


def curie(iri: URIRef) -> str:
    for prefix, namespace in (("dct", DCT), ("dcat", DCAT), ("dcatap", DCATAP),
                              ("eucaim", EUCAIM), ("healthdcatap", HEALTH), ("foaf", FOAF),
                              ("cv", CV)):
        if iri.startswith(str(namespace)):
            return f"{prefix}:{iri[len(str(namespace)):]}"
    raise AssertionError(iri)


@pytest.mark.parametrize("prop", MANDATORY, ids=curie)
def test_removing_a_mandatory_dataset_property_is_a_violation_naming_it(
        validator: Validator, prop: URIRef) -> None:
    issues = check(validator, replace(complete_record(), DATASET, prop))
    name = curie(prop)
    [issue] = find(issues, name)
    assert issue.focus == str(DATASET)
    assert issue.message.startswith(f"{name} is missing")
    assert issue.describe().startswith(f"{name} is missing on <{DATASET}>")
    assert not validator.conforms(issues)


@pytest.mark.parametrize(("subject", "prop", "location"), [
    (HOSPITAL, FOAF.name, f"<{HOSPITAL}> (the dct:publisher of <{DATASET}>)"),
    (HOSPITAL, CV.contactPoint, f"<{HOSPITAL}> (the dct:publisher of <{DATASET}>)"),
    (DICOM, DCAT.accessURL, f"<{DICOM}> (the dcat:distribution of <{DATASET}>)"),
    (DICOM, DCATAP.applicableLegislation, f"<{DICOM}> (the dcat:distribution of <{DATASET}>)"),
])
def test_removing_a_mandatory_nested_property_names_it_and_where(
        validator: Validator, subject: URIRef, prop: URIRef, location: str) -> None:
    issues = check(validator, replace(complete_record(), subject, prop))
    issue = only_violation(issues)
    assert (issue.path, issue.focus, issue.location) == (curie(prop), str(subject), location)
    assert issue.describe().startswith(f"{curie(prop)} is missing on {location}")


def test_missing_name_of_a_blank_node_hdab_says_whose_it_is(validator: Validator) -> None:
    graph = complete_record()
    hdab = graph.value(DATASET, HEALTH.hdab)
    assert isinstance(hdab, BNode)
    issue = only_violation(check(validator, replace(graph, hdab, FOAF.name)))
    assert issue.focus == f"_:{hdab}"
    assert issue.location == f"the healthdcatap:hdab of <{DATASET}>"
    assert issue.describe() == (f"foaf:name is missing on the healthdcatap:hdab of <{DATASET}>: "
                                "give the official name of the Health Data Access Body")


def contact_point(graph: Graph) -> Node:
    contact = graph.value(DATASET, DCAT.contactPoint)
    assert isinstance(contact, BNode)
    return contact


def test_contact_point_without_email_or_page(validator: Validator) -> None:
    graph = complete_record()
    contact = contact_point(graph)
    issue = only_violation(check(validator, replace(graph, contact, VCARD.hasEmail)))
    assert issue.path == "vcard:hasEmail"
    assert issue.location == f"the dcat:contactPoint of <{DATASET}>"
    assert issue.value is None


def test_access_rights_outside_the_value_set_is_reported_with_the_value(
        validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, DCT.accessRights, URIRef(ACCESS_RIGHT + "OPEN"))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("dct:accessRights", ACCESS_RIGHT + "OPEN")
    assert issue.message.startswith(
        f"dct:accessRights value <{ACCESS_RIGHT}OPEN> is not in the value set: use ")
    assert issue.describe().startswith(
        f"dct:accessRights value <{ACCESS_RIGHT}OPEN> is not in the value set on <{DATASET}>")


def test_dicom_modality_code_is_not_an_eucaim_modality(validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, EUCAIM.hasImageModality, Literal("CT"))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("eucaim:hasImageModality", "CT")
    assert issue.message.startswith('eucaim:hasImageModality value "CT" is not in the value set')
    assert "eucaim:IMG" in issue.message


def test_body_part_from_another_family_is_rejected(validator: Validator) -> None:
    wrong = EUCAIM.IMG1000022  # a modality, not a body structure
    graph = replace(complete_record(), DATASET, EUCAIM.hasImageBodyPart, wrong)
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("eucaim:hasImageBodyPart", str(wrong))


def test_segmentation_label_outside_the_value_set(validator: Validator) -> None:
    graph = complete_record()
    graph.add((DATASET, EUCAIM.hasAnnotationLabel, EUCAIM.BP9999999))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("eucaim:hasAnnotationLabel", str(EUCAIM.BP9999999))
    assert "Segmentation Label value set" in issue.message
    assert f"<{EUCAIM.BP9999999}>" in issue.message


def test_cancer_condition_must_be_a_single_eucaim_condition(validator: Validator) -> None:
    graph = complete_record()
    graph.add((DATASET, EUCAIM.hasCondition, URIRef("http://snomed.info/id/399068003")))
    issues = violations(check(validator, graph))
    assert {(i.path, i.value) for i in issues} == {
        ("eucaim:hasCondition", "http://snomed.info/id/399068003"),
        ("eucaim:hasCondition", None)}
    [too_many] = [i for i in issues if i.value is None]
    assert too_many.message.startswith("eucaim:hasCondition has more than one value")


def test_count_with_the_wrong_datatype(validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, HEALTH.numberOfRecords,
                    Literal("1310", datatype=ns.XSD.integer))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("healthdcatap:numberOfRecords", "1310")
    assert issue.message.startswith(
        'healthdcatap:numberOfRecords value "1310"^^xsd:integer has the wrong datatype: use an '
        "xsd:nonNegativeInteger")
    assert issue.describe().startswith(
        'healthdcatap:numberOfRecords value "1310"^^xsd:integer has the wrong datatype on '
        f"<{DATASET}>: use")


def test_untyped_release_date(validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, DCT.issued, Literal("March 2024"))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("dct:issued", "March 2024")
    assert issue.message.startswith('dct:issued value "March 2024" is not a typed date: use')


def test_structured_data_needs_variables(validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, HEALTH.hasVariables)
    issue = only_violation(check(validator, graph))
    assert issue.path == "healthdcatap:hasVariables"
    assert "mandatory when healthdcatap:hasStructuredData is true" in issue.message
    replace(graph, DATASET, HEALTH.hasStructuredData, Literal(False))
    assert violations(check(validator, graph)) == []


def test_title_needs_an_english_version(validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, DCT.title,
                    Literal("Cohorte IRM multiparamétrique prostate", lang="fr"))
    issue = only_violation(check(validator, graph))
    assert issue.path == "dct:title"
    assert "English" in issue.message


def test_distribution_rights_without_an_access_condition(validator: Validator) -> None:
    graph = replace(complete_record(), DICOM, DCT.rights,
                    URIRef("https://data.example-hospital.eu/rights"))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.focus) == ("dct:rights", str(DICOM))
    assert "no EUCAIM access condition" in issue.message


def test_distribution_without_rights_is_a_warning_only(validator: Validator) -> None:
    # The two upstream versions of Distribution.md disagree (1..n mandatory, 0..n recommended).
    issues = check(validator, replace(complete_record(), DICOM, DCT.rights))
    assert validator.conforms(issues)
    [warning] = issues
    assert (warning.severity, warning.path) == ("warning", "dct:rights")


def test_file_format_outside_the_eu_file_type_table(validator: Validator) -> None:
    graph = replace(complete_record(), DICOM, DCT["format"],
                    URIRef("https://example.org/formats/dicom"))
    issue = only_violation(check(validator, graph))
    assert (issue.path, issue.value) == ("dct:format", "https://example.org/formats/dicom")
    assert "EU File Type table" in issue.message


def test_missing_hdab_is_tolerated_during_the_ehds_transition(validator: Validator) -> None:
    issues = check(validator, replace(complete_record(), DATASET, HEALTH.hdab))
    assert validator.conforms(issues)
    [warning] = issues
    assert (warning.severity, warning.path) == ("warning", "healthdcatap:hdab")


@pytest.mark.parametrize("prop", [DCAT.landingPage, HEALTH.minTypicalAge, DCT.temporal,
                                  HEALTH.healthTheme, DCT.language], ids=curie)
def test_missing_recommended_property_is_a_warning(validator: Validator, prop: URIRef) -> None:
    issues = check(validator, replace(complete_record(), DATASET, prop))
    [warning] = issues
    assert (warning.severity, warning.path) == ("warning", curie(prop))
    assert "recommended" in warning.message
    assert validator.conforms(issues)


def test_untyped_contact_point_is_a_warning_wrong_type_a_violation(
        validator: Validator) -> None:
    graph = complete_record()
    contact = contact_point(graph)
    graph.remove((contact, ns.RDF.type, None))
    [warning] = check(validator, graph)
    assert (warning.severity, warning.path) == ("warning", "dcat:contactPoint")
    assert "has no rdf:type: expected a vcard:Kind" in warning.message
    graph.add((contact, ns.RDF.type, DCT.Agent))
    issue = only_violation(check(validator, graph))
    assert issue.message == ('dcat:contactPoint value [ "Imaging data desk" ] has the wrong '
                             "class: it is a dct:Agent, expected a vcard:Kind")


def test_external_iris_need_no_type(validator: Validator) -> None:
    # The complete record references authority-table entries, ELIs, licences and vocabularies
    # without typing them; an undescribed IRI is accepted as an instance of the range class.
    graph = complete_record()
    assert (URIRef(ACCESS_RIGHT + "RESTRICTED"), None, None) not in graph
    assert check(validator, graph) == []


def test_literal_publisher_is_a_violation(validator: Validator) -> None:
    graph = replace(complete_record(), DATASET, DCT.publisher, Literal("Example Hospital"))
    graph.remove((DATASET, URIRef("http://data.europa.eu/930/custodian"), None))
    issues = violations(check(validator, graph))
    assert any(i.path == "dct:publisher" and i.value == "Example Hospital"
               and "not a literal" in i.message for i in issues)


def test_w3id_healthdcat_namespace_must_be_canonicalised_first(validator: Validator) -> None:
    graph = Graph()
    for s, p, o in complete_record():
        if str(p).startswith(str(HEALTH)):
            p = URIRef(HEALTH_W3ID + str(p)[len(str(HEALTH)):])
        graph.add((s, p, o))
    assert find(check(validator, graph), "healthdcatap:numberOfRecords")
    assert check(validator, canonicalise_aliases(graph)) == []
