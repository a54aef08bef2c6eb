"""OMOP CDM v5.4 (PostgreSQL) with the medical-imaging extension: the tables and queries a
harvest reads (:mod:`catalogue.omop.source`) and the mapping of OMOP concepts to the catalogue's
codes (:mod:`catalogue.omop.concepts`). The harvester itself is
:class:`catalogue.harvest.omop.OmopHarvester`.
"""

from catalogue.omop.concepts import (
    Concept,
    ConceptCache,
    body_part_of,
    body_parts_in_name,
    condition_codes,
    is_imaging_procedure,
    modalities_of,
    sex_of,
)
from catalogue.omop.source import OmopError, OmopSettings, OmopSource

__all__ = [
    "Concept",
    "ConceptCache",
    "OmopError",
    "OmopSettings",
    "OmopSource",
    "body_part_of",
    "body_parts_in_name",
    "condition_codes",
    "is_imaging_procedure",
    "modalities_of",
    "sex_of",
]
