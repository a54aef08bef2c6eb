"""Generated EUCAIM-DCAT-AP dataset descriptions (Turtle) for tests and benchmarks.

Realistic variety: cancer type, modality and body part are correlated as in practice; providers
spread over EU countries. Record Turtle uses ``@@BASE@@`` for the serving origin (see
``dcat_server``) and the prefixes of ``dcat_server.PREFIXES`` plus ``eucaim:``.
"""

from __future__ import annotations

import random

EUCAIM_PREFIX = "@prefix eucaim: <https://cancerimage.eu/ontology/EUCAIM#> .\n"

# (cancer label, SNOMED code, modalities, body parts)
CANCERS = [
    ("lung cancer", "93880001", ["CT", "PT"], ["CHEST"]),
    ("breast cancer", "254837009", ["MG", "MR", "US"], ["BREAST"]),
    ("prostate cancer", "399068003", ["MR"], ["PROSTATE"]),
    ("colorectal cancer", "363406005", ["CT", "MR"], ["ABDOMEN", "PELVIS"]),
    ("glioblastoma", "393563007", ["MR"], ["BRAIN"]),
    ("hepatocellular carcinoma", "109841003", ["CT", "MR"], ["LIVER"]),
    ("pancreatic cancer", "363418001", ["CT"], ["PANCREAS", "ABDOMEN"]),
]
COUNTRIES = [
    "ESP",
    "DEU",
    "NLD",
    "ITA",
    "GRC",
    "PRT",
    "FRA",
    "BEL",
    "SWE",
    "POL",
    "AUT",
    "IRL",
    "FIN",
    "CZE",
    "HUN",
]
MANUFACTURERS = ["Siemens Healthineers", "GE HealthCare", "Philips", "Canon Medical Systems"]


def record(
    i: int, *, seed: int = 0, version: str = "1.0.0", description: str | None = None
) -> tuple[str, str]:
    """(identifier, Turtle) of dataset ``i``; ``version`` changes the content."""
    rnd = random.Random(seed * 1_000_003 + i)  # noqa: S311 - test data, not security
    cancer, code, modalities, parts = CANCERS[i % len(CANCERS)]
    country = COUNTRIES[i % len(COUNTRIES)]
    identifier = f"gen-{i:06d}"
    iri = f"<@@BASE@@/dataset/{identifier}>"
    individuals = rnd.randint(30, 5000)
    studies = individuals * rnd.randint(1, 4)
    low = rnd.choice([18, 25, 30, 40, 50])
    text = (
        description
        if description is not None
        else (
            f"Retrospective {cancer} imaging cohort ({', '.join(modalities)}) from a "
            f"{country} hospital network, with diagnosis confirmed by histopathology."
        )
    )
    mods = ", ".join(f'"{m}"' for m in modalities)
    bps = ", ".join(f'"{b}"' for b in parts)
    manuf = rnd.choice(MANUFACTURERS)
    desc_line = f'  dct:description "{text}"@en ;\n' if text else ""
    turtle = f"""{iri} a dcat:Dataset ;
  dct:identifier "{identifier}" ;
  dct:title "{cancer.capitalize()} imaging cohort {i}"@en ;
{desc_line}  dcat:version "{version}" ;
  dcat:keyword "{cancer}"@en, "{modalities[0]}"@en ;
  dcat:theme <http://publications.europa.eu/resource/authority/data-theme/HEAL> ;
  dct:accessRights <http://publications.europa.eu/resource/authority/access-right/RESTRICTED> ;
  dct:spatial <http://publications.europa.eu/resource/authority/country/{country}> ;
  dct:publisher <@@BASE@@/org/{i % 30}> ;
  dcat:contactPoint [ a vcard:Kind ; vcard:fn "Data desk {i % 30}" ;
      vcard:hasEmail <mailto:data{i % 30}@example.org> ] ;
  dct:issued "2023-01-{1 + i % 28:02d}"^^xsd:date ;
  healthdcatap:numberOfUniqueIndividuals "{individuals}"^^xsd:nonNegativeInteger ;
  healthdcatap:numberOfRecords "{studies}"^^xsd:nonNegativeInteger ;
  healthdcatap:minTypicalAge "{low}"^^xsd:nonNegativeInteger ;
  healthdcatap:maxTypicalAge "{low + 40}"^^xsd:nonNegativeInteger ;
  <https://cancerimage.eu/ontology/EUCAIM#hasCondition> <http://snomed.info/id/{code}> ;
  <https://cancerimage.eu/ontology/EUCAIM#hasImageModality> {mods} ;
  <https://cancerimage.eu/ontology/EUCAIM#hasImageBodyPart> {bps} ;
  <https://cancerimage.eu/ontology/EUCAIM#hasEquipmentManufacturer> "{manuf}" ;
  dcat:distribution <@@BASE@@/dataset/{identifier}/dicom> .
<@@BASE@@/dataset/{identifier}/dicom> a dcat:Distribution ;
  dcat:accessURL <@@BASE@@/access/{identifier}> ;
  dct:format <http://publications.europa.eu/resource/authority/file-type/DICOM> ;
  dct:license <http://publications.europa.eu/resource/authority/licence/CC_BY_NC_4_0> .
<@@BASE@@/org/{i % 30}> a foaf:Agent ; foaf:name "Provider {i % 30}"@en .
"""
    return identifier, turtle
