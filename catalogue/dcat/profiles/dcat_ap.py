"""DCAT-AP 3 (with the DCAT-AP 2 variants still found in harvested data)."""

from __future__ import annotations

from typing import Any, ClassVar

from rdflib import URIRef

from catalogue.dcat.countries import alpha2_from_iri, iri_from_alpha2
from catalogue.dcat.namespaces import (
    ADMS,
    DCAT,
    DCATAP,
    DCT,
    DQV,
    FOAF,
    LOCN,
    ODRL,
    PROV,
    RDF,
    SPDX,
    VCARD,
)
from catalogue.dcat.profiles.base import Profile
from catalogue.dcat.profiles.facets import Facet, ListFacet, PeriodFacet
from catalogue.dcat.profiles.kinds import (
    DATETIME,
    DECIMAL,
    DURATION,
    EMAILS,
    INTEGER,
    IRI,
    IRIS,
    MEDIA_TYPE,
    PERIODS,
    RESOURCE,
    RESOURCES,
    STRING,
    STRINGS,
    TEMPORAL,
    TERM,
    TERMS,
    TEXT,
    TEXTS,
    Nested,
    Row,
)


def country_code(item: Any) -> str | None:
    """ISO alpha-2 code of a ``dct:spatial`` value that is an EU country authority IRI."""
    if isinstance(item, dict):
        item = item.get("@id")
    return alpha2_from_iri(item) if isinstance(item, str) else None


AGENT: tuple[Row, ...] = (
    ("types", RDF.type, IRIS),
    ("name", FOAF.name, TEXT),
    ("agent_type", DCT.type, IRI),
    ("identifier", DCT.identifier, TERM),
    ("description", DCT.description, TEXT),
    ("email", FOAF.mbox, EMAILS),
    ("homepage", FOAF.homepage, IRIS),
    ("phone", FOAF.phone, TERMS),
    ("url", VCARD.hasURL, IRIS),
    ("contact_points", DCAT.contactPoint, Nested("contact", many=True)),
    ("address", LOCN.address, RESOURCES),
)
CONTACT: tuple[Row, ...] = (  # vcard:Kind
    ("types", RDF.type, IRIS),
    ("name", VCARD.fn, STRING),
    ("email", VCARD.hasEmail, EMAILS),
    ("url", VCARD.hasURL, IRIS),
    ("telephone", VCARD.hasTelephone, RESOURCES),
    ("organisation", VCARD["organization-name"], STRING),
    ("address", VCARD.hasAddress, RESOURCE),
)
ATTRIBUTION: tuple[Row, ...] = (
    ("types", RDF.type, IRIS),
    ("agent", PROV.agent, Nested("agent", text_key="name")),
    ("roles", DCAT.hadRole, IRIS),
)
RELATIONSHIP: tuple[Row, ...] = (
    ("types", RDF.type, IRIS),
    ("relations", DCT.relation, IRIS),
    ("roles", DCAT.hadRole, IRIS),
)
CHECKSUM: tuple[Row, ...] = (
    ("types", RDF.type, IRIS),
    ("algorithm", SPDX.algorithm, IRI),
    ("value", SPDX.checksumValue, STRING),
)


class DcatAp3Profile(Profile):
    """DCAT-AP 3.0: the European base profile."""

    name = "dcat_ap"

    dataset_attribute_rows: ClassVar[tuple[Row, ...]] = (
        ("title", DCT.title, TEXT),
        ("description", DCT.description, TEXT),
        ("keywords", DCAT.keyword, STRINGS),
        ("themes", DCAT.theme, IRIS),
        ("access_rights", DCT.accessRights, IRI),
        ("licence", DCT.license, IRI),
        ("landing_page", DCAT.landingPage, IRI),
        ("issued", DCT.issued, DATETIME),
        ("modified", DCT.modified, DATETIME),
    )
    dataset_field_rows: ClassVar[tuple[Row, ...]] = (
        ("alternative", DCT.alternative, TEXTS),
        ("version", DCAT.version, STRING),
        ("version_notes", ADMS.versionNotes, TEXTS),
        ("other_identifiers", ADMS.identifier, RESOURCES),
        ("types", DCT.type, TERMS),
        ("contact_points", DCAT.contactPoint, Nested("contact", many=True)),
        ("publisher", DCT.publisher, Nested("agent", text_key="name")),
        ("creators", DCT.creator, Nested("agent", many=True, text_key="name")),
        ("qualified_attributions", PROV.qualifiedAttribution, Nested("attribution", many=True)),
        ("qualified_relations", DCAT.qualifiedRelation, Nested("relationship", many=True)),
        ("documentation", FOAF.page, IRIS),
        ("languages", DCT.language, IRIS),
        ("frequency", DCT.accrualPeriodicity, IRI),
        ("spatial", DCT.spatial, RESOURCES),
        ("temporal", DCT.temporal, PERIODS),
        ("spatial_resolution", DCAT.spatialResolutionInMeters, DECIMAL),
        ("temporal_resolution", DCAT.temporalResolution, DURATION),
        ("applicable_legislation", DCATAP.applicableLegislation, IRIS),
        ("conforms_to", DCT.conformsTo, RESOURCES),
        ("provenance", DCT.provenance, RESOURCES),
        ("was_generated_by", PROV.wasGeneratedBy, RESOURCES),
        ("in_series", DCAT.inSeries, IRIS),
        ("has_version", DCAT.hasVersion, IRIS),
        ("is_version_of", DCT.isVersionOf, IRIS),
        ("source", DCT.source, IRIS),
        ("relations", DCT.relation, IRIS),
        ("is_referenced_by", DCT.isReferencedBy, IRIS),
        ("samples", ADMS.sample, RESOURCES),
        ("quality_annotations", DQV.hasQualityAnnotation, RESOURCES),
        ("rights", DCT.rights, RESOURCES),
    )
    distribution_attribute_rows: ClassVar[tuple[Row, ...]] = (
        ("title", DCT.title, TEXT),
        ("access_url", DCAT.accessURL, IRI),
        ("download_url", DCAT.downloadURL, IRI),
        ("media_type", DCAT.mediaType, MEDIA_TYPE),
        ("format", DCT["format"], TERM),  # not DCT.format: that is str.format
        ("licence", DCT.license, IRI),
        ("byte_size", DCAT.byteSize, INTEGER),
    )
    distribution_field_rows: ClassVar[tuple[Row, ...]] = (
        ("description", DCT.description, TEXT),
        ("documentation", FOAF.page, IRIS),
        ("access_services", DCAT.accessService, RESOURCES),
        ("availability", DCATAP.availability, IRI),
        ("compress_format", DCAT.compressFormat, MEDIA_TYPE),
        ("package_format", DCAT.packageFormat, MEDIA_TYPE),
        ("checksum", SPDX.checksum, Nested("checksum")),
        ("checksum_value", SPDX.checksumValue, STRING),  # EUCAIM v1: value on the distribution
        ("spatial_resolution", DCAT.spatialResolutionInMeters, DECIMAL),
        ("temporal_resolution", DCAT.temporalResolution, DURATION),
        ("conforms_to", DCT.conformsTo, RESOURCES),
        ("languages", DCT.language, IRIS),
        ("applicable_legislation", DCATAP.applicableLegislation, IRIS),
        ("rights", DCT.rights, RESOURCES),
        ("access_rights", DCT.accessRights, IRI),
        ("policy", ODRL.hasPolicy, RESOURCES),
        ("status", ADMS.status, IRI),
        ("issued", DCT.issued, TEMPORAL),
        ("modified", DCT.modified, TEMPORAL),
    )
    structures: ClassVar[dict[str, tuple[Row, ...]]] = {
        "agent": AGENT,
        "contact": CONTACT,
        "attribution": ATTRIBUTION,
        "relationship": RELATIONSHIP,
        "checksum": CHECKSUM,
    }
    structure_types: ClassVar[dict[str, URIRef]] = {
        "agent": FOAF.Agent,
        "contact": VCARD.Kind,
        "attribution": PROV.Attribution,
        "relationship": DCAT.Relationship,
        "checksum": SPDX.Checksum,
    }
    facets: ClassVar[tuple[Facet, ...]] = (
        ListFacet("countries", ("spatial",), to_facet=country_code, from_facet=iri_from_alpha2),
        PeriodFacet("temporal_start", "temporal_end", "temporal"),
    )
