"""EUCAIM-DCAT-AP v2 dataset descriptions written for the SHACL tests.

``complete_record()`` has every mandatory and recommended property of EUCAIM-DCAT-AP v2
(Dataset.md, Distribution.md) with values from the right value sets, in the canonical
HealthDCAT-AP namespace; tests remove or break one property at a time.
"""

from __future__ import annotations

from rdflib import Graph, Namespace, URIRef

DS = Namespace("https://data.example-hospital.eu/dataset/")
DATASET = DS["prostate-mri"]
DICOM = DS["prostate-mri-dicom"]
HOSPITAL = URIRef("https://data.example-hospital.eu/org/hospital")

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
DCATAP = Namespace("http://data.europa.eu/r5r/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
CV = Namespace("http://data.europa.eu/m8g/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
HEALTH = Namespace("http://healthdataportal.eu/ns/health#")
HEALTH_W3ID = "https://w3id.org/healthdcat-ap#"
EUCAIM = Namespace("https://cancerimage.eu/ontology/EUCAIM#")

EU = "http://publications.europa.eu/resource/authority/"
HDEU = "https://hdeu-dcat.acceptance.data.health.europa.eu/resource/authority/"
ACCESS_CONDITIONS = ("https://eucaim.github.io/eucaim_dcat_ap/releases/controlled-vocabularies/"
                     "access-conditions/#")

PREFIXES = "".join(f"@prefix {prefix}: <{iri}> .\n" for prefix, iri in (
    ("adms", "http://www.w3.org/ns/adms#"),
    ("cv", str(CV)),
    ("dcat", str(DCAT)),
    ("dcatap", str(DCATAP)),
    ("dct", str(DCT)),
    ("dpv", "https://w3id.org/dpv#"),
    ("dqv", "http://www.w3.org/ns/dqv#"),
    ("eucaim", str(EUCAIM)),
    ("foaf", str(FOAF)),
    ("geodcatap", "http://data.europa.eu/930/"),
    ("healthdcatap", str(HEALTH)),
    ("prov", "http://www.w3.org/ns/prov#"),
    ("spdx", "http://spdx.org/rdf/terms#"),
    ("vcard", str(VCARD)),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
    ("ds", str(DS)),
    ("org", "https://data.example-hospital.eu/org/"),
    ("access-right", EU + "access-right/"),
    ("availability", EU + "planned-availability/"),
    ("country", EU + "country/"),
    ("data-theme", EU + "data-theme/"),
    ("file-type", EU + "file-type/"),
    ("frequency", EU + "frequency/"),
    ("language", EU + "language/"),
    ("status", EU + "distribution-status/"),
    ("hc", HDEU + "healthcategories/"),
    ("ht", HDEU + "health-theme/"),
    ("cs", HDEU + "coding-system/"),
    ("ha", HDEU + "health-activity/"),
    ("pt", HDEU + "publisher-type/"),
    ("ac", ACCESS_CONDITIONS),
    ("eli", "http://data.europa.eu/eli/reg/2025/327/"),
))

COMPLETE = PREFIXES + """
ds:prostate-mri a dcat:Dataset ;
    dct:identifier "https://data.example-hospital.eu/dataset/prostate-mri"^^xsd:anyURI ;
    dct:title "Prostate cancer mpMRI cohort"@en,
        "Cohorte IRM multiparamétrique prostate"@fr ;
    dct:description \"\"\"Multiparametric MRI (T2w, DWI, ADC) of patients with
        biopsy-confirmed prostate cancer.\"\"\"@en ;
    dcat:version "1.2.0" ;
    eucaim:interoperabilityLevel eucaim:SPEC1000011 ;
    dcat:distribution ds:prostate-mri-dicom ;
    dcat:contactPoint [ a vcard:Organization ; vcard:fn "Imaging data desk" ;
        vcard:hasEmail <mailto:imaging-data@example-hospital.eu> ] ;
    foaf:page <https://www.example-hospital.eu/research/prostate-mri> ;
    dcat:theme data-theme:HEAL ;
    healthdcatap:healthCategory hc:IDHC ;
    healthdcatap:healthTheme ht:CANCER_DISEASE ;
    dct:type eucaim:SPEC1000019, dpv:PseudonymisedData ;
    dct:accessRights access-right:RESTRICTED ;
    dcatap:applicableLegislation eli:oj ;
    dpv:hasLegalBasis <https://w3id.org/dpv/legal/eu/gdpr#A9-2-j> ;
    dpv:hasPurpose dpv:ScientificResearch ;
    dpv:hasPersonalData <https://w3id.org/dpv/pd#Age>, <https://w3id.org/dpv/pd#HealthRecord> ;
    healthdcatap:retentionPeriod [ a dct:PeriodOfTime ; dcat:startDate "2024-01-01"^^xsd:date ;
        dcat:endDate "2034-12-31"^^xsd:date ] ;
    dct:publisher org:hospital ;
    healthdcatap:hasStructuredData true ;
    healthdcatap:hasVariables ds:prostate-mri-variables ;
    healthdcatap:numberOfUniqueIndividuals "1024"^^xsd:nonNegativeInteger ;
    healthdcatap:numberOfRecords "1310"^^xsd:nonNegativeInteger ;
    eucaim:hasBirthSex eucaim:COM1001370 ;
    healthdcatap:minTypicalAge "45"^^xsd:nonNegativeInteger ;
    healthdcatap:maxTypicalAge "85"^^xsd:nonNegativeInteger ;
    eucaim:hasCondition eucaim:CLIN1000075 ;
    healthdcatap:populationCoverage \"\"\"Men aged 45-85 with biopsy-confirmed prostate
        cancer, Spain, 2018-2023.\"\"\"@en ;
    eucaim:collectionMethod eucaim:SPEC1000003 ;
    dct:spatial country:ESP ;
    eucaim:hasImageModality eucaim:IMG1000022 ;
    eucaim:hasEquipmentManufacturer eucaim:IMG1000047 ;
    eucaim:hasImageBodyPart eucaim:BP1000233 ;
    dct:temporal [ a dct:PeriodOfTime ; dcat:startDate "2018-01-01"^^xsd:date ;
        dcat:endDate "2023-12-31"^^xsd:date ] ;
    eucaim:hasAnnotationLabel eucaim:BP1000017, eucaim:BP1000227 ;
    eucaim:hasAlgorithmType eucaim:COM1000003 ;
    eucaim:nbrOfSegmentations "512"^^xsd:nonNegativeInteger ;
    dcat:keyword "prostate cancer"@en, "mpMRI"@en ;
    dct:provenance [ a dct:ProvenanceStatement ;
        dct:description \"\"\"Retrospective extraction from the hospital PACS,
            de-identified with the EUCAIM anonymiser.\"\"\"@en ] ;
    healthdcatap:hasCodingSystem cs:ICD-10 ;
    healthdcatap:hasCodeValues "ICD-10: C61" ;
    geodcatap:custodian org:hospital ;
    healthdcatap:hdab [ a foaf:Organization ;
        foaf:name "Example Health Data Access Body"@en ;
        cv:contactPoint [ a cv:ContactPoint ; cv:email "access@hdab.example.eu" ] ] ;
    dct:language language:ENG ;
    dct:accrualPeriodicity frequency:ANNUAL ;
    dcat:landingPage <https://www.example-hospital.eu/research/prostate-mri> ;
    adms:sample ds:prostate-mri-sample ;
    healthdcatap:analytics ds:prostate-mri-report ;
    dqv:hasQualityAnnotation [ a dqv:QualityCertificate ] ;
    dct:creator [ a foaf:Organization ; foaf:name "Radiology department"@en ;
        foaf:mbox <mailto:radiology@example-hospital.eu> ] ;
    prov:wasGeneratedBy [ a prov:Activity ; dct:type ha:RESEARCH_PROJECT ] ;
    dct:issued "2024-03-01"^^xsd:date ;
    dct:modified "2025-02-10T09:30:00Z"^^xsd:dateTime ;
    dcat:spatialResolutionInMeters "0.0005"^^xsd:decimal .

org:hospital a foaf:Organization ;
    foaf:name "Example University Hospital"@en ;
    dct:type pt:HealthcareProvider ;
    dct:description "University hospital providing cancer imaging data for research."@en ;
    cv:contactPoint [ a cv:ContactPoint ; cv:email "research-data@example-hospital.eu" ;
        cv:contactPage <https://www.example-hospital.eu/contact> ] .

ds:prostate-mri-dicom a dcat:Distribution ;
    dct:title "DICOM images"@en ;
    dct:description "mpMRI studies in DICOM, processed in the EUCAIM environment."@en ;
    dcat:accessURL <https://negotiator.cancerimage.eu/requests/new?dataset=prostate-mri> ;
    dcatap:availability availability:STABLE ;
    dct:format file-type:DICOM ;
    dcat:mediaType <https://www.iana.org/assignments/media-types/application/dicom> ;
    dcat:byteSize "734003200"^^xsd:nonNegativeInteger ;
    spdx:checksum [ a spdx:Checksum ; spdx:algorithm spdx:checksumAlgorithm_sha256 ;
        spdx:checksumValue
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"^^xsd:hexBinary ] ;
    dcatap:applicableLegislation eli:oj ;
    dct:license <https://creativecommons.org/licenses/by-nc/4.0/> ;
    dct:rights ac:IN_SITU_PROCESSING ;
    adms:status status:COMPLETED ;
    dct:issued "2024-03-01"^^xsd:date .

ds:prostate-mri-sample a dcat:Distribution ;
    dct:description "Ten synthetic studies."@en ;
    dcat:accessURL <https://data.example-hospital.eu/samples/prostate-mri.zip> ;
    dcatap:availability availability:AVAILABLE ;
    dct:format file-type:ZIP ;
    dcatap:applicableLegislation eli:oj ;
    dct:license <https://creativecommons.org/licenses/by/4.0/> ;
    dct:rights ac:DOWNLOAD .

ds:prostate-mri-report a dcat:Distribution ;
    dct:description "Quality report."@en ;
    dcat:accessURL <https://data.example-hospital.eu/reports/prostate-mri.pdf> ;
    dcatap:availability availability:AVAILABLE ;
    dct:format file-type:PDF ;
    dcatap:applicableLegislation eli:oj ;
    dct:license <https://creativecommons.org/licenses/by/4.0/> ;
    dct:rights ac:DOWNLOAD .
"""

# Keywords that make the complete record a typical ~150-triple description.
_MORE_KEYWORDS = ("multiparametric MRI", "diffusion-weighted imaging", "ADC map", "T2-weighted",
                  "biopsy-confirmed", "PI-RADS", "radiomics", "segmentation", "peripheral zone",
                  "transition zone", "Gleason score", "active surveillance", "prostatectomy",
                  "lesion detection", "AI training data", "EUCAIM", "federated processing",
                  "Spain", "retrospective cohort", "pseudonymised", "DICOM", "cancer imaging",
                  "urology", "men's health", "oncology", "screening", "PSA")


def complete_record(extra_keywords: int = 0) -> Graph:
    """The complete record; ``extra_keywords`` adds keyword triples (up to 27)."""
    graph = Graph().parse(data=COMPLETE, format="turtle")
    for word in _MORE_KEYWORDS[:extra_keywords]:
        graph.parse(data=f'{PREFIXES} ds:prostate-mri dcat:keyword "{word}"@en .',
                    format="turtle")
    return graph


def canonicalise_aliases(graph: Graph) -> Graph:
    """Test-only fallback for the canonicalising module: HealthDCAT-AP terms in the
    https://w3id.org/healthdcat-ap# namespace → http://healthdataportal.eu/ns/health#."""
    out = Graph()
    for s, p, o in graph:
        if str(p).startswith(HEALTH_W3ID):
            p = HEALTH[str(p)[len(HEALTH_W3ID):]]
        out.add((s, p, o))
    return out
