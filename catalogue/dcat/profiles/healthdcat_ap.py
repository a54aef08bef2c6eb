"""HealthDCAT-AP (Release 7; Release 5 properties accepted): health data on top of DCAT-AP 3."""

from __future__ import annotations

from typing import Any, ClassVar

from rdflib import URIRef

from catalogue.dcat.namespaces import CV, DCT, DPV, GEODCATAP, HEALTHDCATAP, RDF
from catalogue.dcat.profiles.dcat_ap import DcatAp3Profile
from catalogue.dcat.profiles.facets import Facet, ListFacet, ScalarFacet
from catalogue.dcat.profiles.kinds import (
    BOOLEAN,
    EMAIL_TEXTS,
    INTEGER,
    IRI,
    IRIS,
    PERIODS,
    RESOURCES,
    STRINGS,
    TERMS,
    TEXT,
    TEXTS,
    Nested,
    Row,
)

CV_CONTACT: tuple[Row, ...] = (  # cv:ContactPoint (Release 7 agents)
    ("types", RDF.type, IRIS),
    ("contact_page", CV.contactPage, IRIS),
    ("email", CV.email, EMAIL_TEXTS),
    ("telephone", CV.telephone, STRINGS),
    ("opening_hours", CV.openingHours, Nested("hours", many=True)),
    ("availability_restrictions", CV.specialOpeningHoursSpecification,
     Nested("hours", many=True)),
)
HOURS: tuple[Row, ...] = (
    ("types", RDF.type, IRIS),
    ("description", DCT.description, TEXT),
    ("frequency", CV.frequency, IRIS),
)
AGENT_EXTRA: tuple[Row, ...] = (
    ("contact_point", CV.contactPoint, Nested("cv_contact")),
    ("publisher_type", HEALTHDCATAP.publisherType, IRI),  # Release 5
    ("publisher_note", HEALTHDCATAP.publisherNote, TEXT),  # Release 5
    ("trusted_data_holder", HEALTHDCATAP.trustedDataHolder, BOOLEAN),  # Release 5
)


def code_of(item: Any) -> str | None:
    """The code of a condition value: a string, or a SKOS concept's IRI or notation."""
    if isinstance(item, str):
        return item
    if isinstance(item, dict):
        if isinstance(item.get("@value"), str):
            return str(item["@value"])
        if isinstance(item.get("@id"), str):
            return str(item["@id"])
        for key in ("dct:identifier", "skos:notation"):
            value = item.get(key)
            value = value[0] if isinstance(value, list) and value else value
            if isinstance(value, dict):
                value = value.get("@value")
            if isinstance(value, str):
                return value
    return None


class HealthDcatApProfile(DcatAp3Profile):
    """HealthDCAT-AP: DCAT-AP 3 plus health categories, population, HDAB, legal basis..."""

    name = "healthdcat_ap"

    dataset_attribute_rows: ClassVar[tuple[Row, ...]] = (
        *DcatAp3Profile.dataset_attribute_rows,
        ("min_age", HEALTHDCATAP.minTypicalAge, INTEGER),
        ("max_age", HEALTHDCATAP.maxTypicalAge, INTEGER),
    )
    dataset_field_rows: ClassVar[tuple[Row, ...]] = (
        *DcatAp3Profile.dataset_field_rows,
        ("health_category", HEALTHDCATAP.healthCategory, IRIS),
        ("health_theme", HEALTHDCATAP.healthTheme, IRIS),
        ("number_of_unique_individuals", HEALTHDCATAP.numberOfUniqueIndividuals, INTEGER),
        ("number_of_records", HEALTHDCATAP.numberOfRecords, INTEGER),
        ("hdab", HEALTHDCATAP.hdab, Nested("agent", text_key="name")),
        ("custodian", GEODCATAP.custodian, Nested("agent", text_key="name")),
        ("legal_basis", DPV.hasLegalBasis, RESOURCES),
        ("purpose", DPV.hasPurpose, RESOURCES),
        ("personal_data", DPV.hasPersonalData, RESOURCES),
        ("retention_period", HEALTHDCATAP.retentionPeriod, PERIODS),
        ("population_coverage", HEALTHDCATAP.populationCoverage, TEXTS),
        ("coding_systems", HEALTHDCATAP.hasCodingSystem, RESOURCES),
        ("code_values", HEALTHDCATAP.hasCodeValues, RESOURCES),
        ("has_structured_data", HEALTHDCATAP.hasStructuredData, BOOLEAN),
        ("variables", HEALTHDCATAP.hasVariables, RESOURCES),
        ("analytics", HEALTHDCATAP.analytics, RESOURCES),
        ("subject", DCT.subject, TERMS),
        ("publisher_type", HEALTHDCATAP.publisherType, IRIS),  # Release 5, on the dataset
        ("publisher_note", HEALTHDCATAP.publisherNote, TEXTS),  # Release 5, on the dataset
    )
    distribution_field_rows: ClassVar[tuple[Row, ...]] = (
        *DcatAp3Profile.distribution_field_rows,
        ("retention_period", HEALTHDCATAP.retentionPeriod, PERIODS),
    )
    structures: ClassVar[dict[str, tuple[Row, ...]]] = {
        **DcatAp3Profile.structures,
        "agent": DcatAp3Profile.structures["agent"] + AGENT_EXTRA,
        "cv_contact": CV_CONTACT,
        "hours": HOURS,
    }
    structure_types: ClassVar[dict[str, URIRef]] = {
        **DcatAp3Profile.structure_types,
        "cv_contact": CV.ContactPoint,
        "hours": DCT.PeriodOfTime,
    }
    facets: ClassVar[tuple[Facet, ...]] = (
        *DcatAp3Profile.facets,
        ListFacet("health_categories", ("health_category", "health_theme")),
        ScalarFacet("number_of_individuals", ("number_of_unique_individuals",)),
        ScalarFacet("number_of_studies", ("number_of_records",)),
        ListFacet("conditions", ("subject", "code_values"), to_facet=code_of),
    )
