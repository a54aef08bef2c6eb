"""EUCAIM-DCAT-AP v2: cancer-imaging datasets on top of HealthDCAT-AP (v1 terms accepted)."""

from __future__ import annotations

from typing import ClassVar

from catalogue.dcat.namespaces import EUCAIM
from catalogue.dcat.profiles.facets import Facet, ListFacet, ScalarFacet
from catalogue.dcat.profiles.healthdcat_ap import HealthDcatApProfile, code_of
from catalogue.dcat.profiles.kinds import INTEGER, IRI, IRIS, TERMS, Row

_REPLACED = frozenset({"conditions", "number_of_individuals", "number_of_studies"})


class EucaimProfile(HealthDcatApProfile):
    """EUCAIM: imaging modality, body part, manufacturer, birth sex, cancer condition..."""

    name = "eucaim"

    dataset_attribute_rows: ClassVar[tuple[Row, ...]] = (
        *HealthDcatApProfile.dataset_attribute_rows,
        ("modalities", EUCAIM.hasImageModality, TERMS),
        ("body_parts", EUCAIM.hasImageBodyPart, TERMS),
        ("manufacturers", EUCAIM.hasEquipmentManufacturer, TERMS),
        ("sexes", EUCAIM.hasBirthSex, TERMS),
    )
    dataset_field_rows: ClassVar[tuple[Row, ...]] = (
        *HealthDcatApProfile.dataset_field_rows,
        ("interoperability_level", EUCAIM.interoperabilityLevel, IRI),
        ("condition", EUCAIM.hasCondition, TERMS),
        ("collection_methods", EUCAIM.collectionMethod, IRIS),
        ("annotation_labels", EUCAIM.hasAnnotationLabel, IRIS),
        ("segmentation_methods", EUCAIM.hasAlgorithmType, IRIS),
        ("number_of_segmentations", EUCAIM.nbrOfSegmentations, INTEGER),
        ("nbr_of_studies", EUCAIM.nbrOfStudies, INTEGER),  # before v2 (now numberOfRecords)
        ("nbr_of_subjects", EUCAIM.nbrOfSubjects, INTEGER),  # before v2
    )
    facets: ClassVar[tuple[Facet, ...]] = (
        *(f for f in HealthDcatApProfile.facets if not set(f.attrs) & _REPLACED),
        ListFacet("conditions", ("condition", "subject", "code_values"), to_facet=code_of),
        ScalarFacet("number_of_individuals", ("number_of_unique_individuals", "nbr_of_subjects")),
        ScalarFacet("number_of_studies", ("number_of_records", "nbr_of_studies")),
    )
