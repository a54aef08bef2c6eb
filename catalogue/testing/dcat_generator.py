"""Generated EUCAIM-DCAT-AP dataset descriptions (Turtle) for tests and benchmarks.

Realistic variety: cancer type, modality and body part are correlated as in practice; providers
spread over EU countries. Record Turtle uses ``@@BASE@@`` for the serving origin (see
``dcat_server``) and the prefixes of ``dcat_server.PREFIXES`` plus ``eucaim:``.
"""

from __future__ import annotations

import random

EUCAIM_PREFIX = "@prefix eucaim: <https://cancerimage.eu/ontology/EUCAIM#> .\n"

# (cancer label, SNOMED CT code, DICOM modalities, body parts as (DICOM term, SNOMED CT code))
CANCERS = [
    ("lung cancer", "93880001", ["CT", "PT"], [("CHEST", "51185008")]),
    ("breast cancer", "254837009", ["MG", "MR", "US"], [("BREAST", "76752008")]),
    ("prostate cancer", "399068003", ["MR"], [("PROSTATE", "41216001")]),
    ("colorectal cancer", "363406005", ["CT", "MR"],
     [("ABDOMEN", "818983003"), ("PELVIS", "12921003")]),
    ("glioblastoma", "393563007", ["MR"], [("BRAIN", "12738006")]),
    ("hepatocellular carcinoma", "109841003", ["CT", "MR"], [("LIVER", "10200004")]),
    ("pancreatic cancer", "363418001", ["CT"], [("PANCREAS", "15776009")]),
]
COUNTRIES = ["ESP", "DEU", "NLD", "ITA", "GRC", "PRT", "FRA", "BEL", "SWE", "POL", "AUT",
             "IRL", "FIN", "CZE", "HUN"]
EUCAIM = "https://cancerimage.eu/ontology/EUCAIM#"
# EUCAIM hyper-ontology codes. From the EUCAIM DCAT-AP examples: MR = IMG1000022, prostate
# cancer = CLIN1000075, manufacturer IMG1000047. Body structures are real codes from the EUCAIM
# segmentation-label value set (label -> concept IRI), which the body_parts vocabulary maps to
# DICOM terms; the examples' BP1000233 is "Neck and chest" there, not the prostate. The other
# modality, condition and manufacturer codes are PLACEHOLDERS in the right ranges, for generated
# test data only (the hyper-ontology is not available offline); they resolve to nothing.
# DICOM modality and SNOMED CT body-site IRIs cannot go next to them: EUCAIM-DCAT-AP requires
# every eucaim:hasImageModality / hasImageBodyPart value to be an EUCAIM class (the SHACL shapes
# reject other IRIs), so conditions carry their standard code as "SNOMED CT: <code>" only.
EUCAIM_MODALITY = {"MR": "IMG1000022", "CT": "IMG1000021", "PT": "IMG1000023",
                   "MG": "IMG1000024", "US": "IMG1000025"}
EUCAIM_BODY_PART = {"PROSTATE": "BP1000021", "CHEST": "BP1000067", "BREAST": "BP1000136",
                    "ABDOMEN": "BP1000173", "PELVIS": "BP1000092", "BRAIN": "BP1000051",
                    "LIVER": "BP1000105", "PANCREAS": "BP1000209"}
EUCAIM_CONDITION = {"399068003": "CLIN1000075", "93880001": "CLIN1000101",
                    "254837009": "CLIN1000102", "363406005": "CLIN1000103",
                    "393563007": "CLIN1000104", "109841003": "CLIN1000105",
                    "363418001": "CLIN1000106"}
EUCAIM_MANUFACTURER = ["IMG1000047", "IMG1000048", "IMG1000049", "IMG1000050"]
# values used by the EUCAIM DCAT-AP examples (interoperability tier, dataset type, birth sex,
# collection method)
TIER, DATA_TYPE, BIRTH_SEX, COLLECTION = "SPEC1000011", "SPEC1000019", "COM1001370", \
    "SPEC1000003"


def record(i: int, *, seed: int = 0, version: str = "1.0.0",
           description: str | None = None) -> tuple[str, str]:
    """(identifier, Turtle) of dataset ``i``: a complete EUCAIM-DCAT-AP v2 description.
    ``version`` changes the content; ``description=""`` drops the mandatory description."""
    rnd = random.Random(seed * 1_000_003 + i)  # noqa: S311 - test data, not security
    cancer, code, modalities, parts = CANCERS[i % len(CANCERS)]
    country = COUNTRIES[i % len(COUNTRIES)]
    identifier = f"gen-{i:06d}"
    iri = f"<@@BASE@@/dataset/{identifier}>"
    individuals = rnd.randint(30, 5000)
    studies = individuals * rnd.randint(1, 4)
    low = rnd.choice([18, 25, 30, 40, 50])
    text = description if description is not None else (
        f"Retrospective {cancer} imaging cohort ({', '.join(modalities)}) from a "
        f"{country} hospital network, with diagnosis confirmed by histopathology.")
    mods = ", ".join(f"<{EUCAIM}{EUCAIM_MODALITY[m]}>" for m in modalities)
    bps = ", ".join(f"<{EUCAIM}{EUCAIM_BODY_PART[term]}>" for term, _sct in parts)
    manuf = rnd.choice(EUCAIM_MANUFACTURER)
    org = i % 30
    desc_line = f'  dct:description "{text}"@en ;\n' if text else ""
    turtle = f"""{iri} a dcat:Dataset ;
  dct:identifier "{identifier}" ;
  dct:title "{cancer.capitalize()} imaging cohort {i}"@en ;
{desc_line}  dcat:version "{version}" ;
  dcat:keyword "{cancer}"@en, "{modalities[0]}"@en ;
  dcat:theme <http://publications.europa.eu/resource/authority/data-theme/HEAL> ;
  healthdcatap:healthCategory <https://hdeu-dcat.acceptance.data.health.europa.eu/resource/authority/healthcategories/EHRS> ;
  healthdcatap:healthTheme <https://hdeu-dcat.acceptance.data.health.europa.eu/resource/authority/health-theme/CANCER> ;
  dct:type <{EUCAIM}{DATA_TYPE}> ;
  <{EUCAIM}interoperabilityLevel> <{EUCAIM}{TIER}> ;
  dct:accessRights <http://publications.europa.eu/resource/authority/access-right/RESTRICTED> ;
  <http://data.europa.eu/r5r/applicableLegislation> <http://data.europa.eu/eli/reg/2025/327/oj> ;
  dct:spatial <http://publications.europa.eu/resource/authority/country/{country}> ;
  dct:publisher <@@BASE@@/org/{org}> ;
  dcat:contactPoint [ a vcard:Kind ; vcard:fn "Data desk {org}" ;
      vcard:hasEmail <mailto:data{org}@example.org> ] ;
  dct:provenance [ a dct:ProvenanceStatement ;
      <http://www.w3.org/2000/01/rdf-schema#label> "Exported from the hospital PACS and de-identified with the EUCAIM anonymiser."@en ] ;
  dct:issued "2023-01-{1 + i % 28:02d}"^^xsd:date ;
  healthdcatap:hasStructuredData false ;
  healthdcatap:numberOfUniqueIndividuals "{individuals}"^^xsd:nonNegativeInteger ;
  healthdcatap:numberOfRecords "{studies}"^^xsd:nonNegativeInteger ;
  healthdcatap:minTypicalAge "{low}"^^xsd:nonNegativeInteger ;
  healthdcatap:maxTypicalAge "{low + 40}"^^xsd:nonNegativeInteger ;
  <{EUCAIM}hasBirthSex> <{EUCAIM}{BIRTH_SEX}> ;
  <{EUCAIM}collectionMethod> <{EUCAIM}{COLLECTION}> ;
  <{EUCAIM}hasCondition> <{EUCAIM}{EUCAIM_CONDITION[code]}> ;
  healthdcatap:hasCodeValues "SNOMED CT: {code}" ;
  <{EUCAIM}hasImageModality> {mods} ;
  <{EUCAIM}hasImageBodyPart> {bps} ;
  <{EUCAIM}hasEquipmentManufacturer> <{EUCAIM}{manuf}> ;
  dcat:distribution <@@BASE@@/dataset/{identifier}/dicom> .
<@@BASE@@/dataset/{identifier}/dicom> a dcat:Distribution ;
  dcat:accessURL <@@BASE@@/access/{identifier}> ;
  dct:format <http://publications.europa.eu/resource/authority/file-type/DICOM> ;
  <http://data.europa.eu/r5r/applicableLegislation> <http://data.europa.eu/eli/reg/2025/327/oj> ;
  dct:license <http://publications.europa.eu/resource/authority/licence/CC_BY_NC_4_0> .
<@@BASE@@/org/{org}> a foaf:Agent ; foaf:name "Provider {org}"@en ;
  <http://data.europa.eu/m8g/contactPoint> <@@BASE@@/org/{org}#contact> .
<@@BASE@@/org/{org}#contact> a <http://data.europa.eu/m8g/ContactPoint> ;
  <http://data.europa.eu/m8g/email> "data{org}@example.org" .
"""
    return identifier, turtle
