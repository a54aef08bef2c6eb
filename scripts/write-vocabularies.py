#!/usr/bin/env python3
"""Write the SKOS vocabularies in ontologies/vocabularies/ from the tables below.

The tables are the source of truth (reviewed by hand; sources in ontologies/vocabularies/
SOURCES.md); the Turtle files are generated so that every concept has the same shape. Modality
and body-part codes come from the DICOM CSVs in ../shared/data/ontology (copied facts: code
value, code meaning, SNOMED code). Run: python3 scripts/write-vocabularies.py
"""

from __future__ import annotations

from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "ontologies" / "vocabularies"
BASE = "https://w3id.org/cancer-imaging-catalogue/vocab/"
SCT, ICD10, DCM = "http://snomed.info/id/", "http://id.who.int/icd/release/10/", \
    "http://dicom.nema.org/resources/ontology/DCM/"
EUCAIM = "https://cancerimage.eu/ontology/EUCAIM#"

# id, parent ids, {lang: prefLabel}, {lang: [altLabels]}, codes ("system:code")
CONDITIONS = [
    ("snomed:363346000", [], {"en": "Malignant neoplastic disease", "de": "Bösartige Neubildung",
                              "fr": "Tumeur maligne", "es": "Neoplasia maligna",
                              "it": "Neoplasia maligna", "nl": "Maligne neoplasma"},
     {"en": ["cancer", "malignant neoplasm", "malignant tumour", "malignant tumor"],
      "de": ["Krebs"], "fr": ["cancer"], "es": ["cáncer"], "it": ["cancro", "tumore"],
      "nl": ["kanker"]}, ["snomed:363346000"]),
    ("snomed:93880001", ["snomed:363346000"],
     {"en": "Primary malignant neoplasm of lung", "de": "Lungenkrebs",
      "fr": "Cancer du poumon", "es": "Cáncer de pulmón", "it": "Tumore del polmone",
      "nl": "Longkanker", "pt": "Cancro do pulmão", "sv": "Lungcancer", "pl": "Rak płuca"},
     {"en": ["lung cancer", "bronchial carcinoma", "lung carcinoma"],
      "de": ["Lungenkarzinom", "Bronchialkarzinom"], "fr": ["cancer bronchopulmonaire"],
      "it": ["carcinoma polmonare"], "es": ["carcinoma de pulmón"], "pt": ["câncer de pulmão"]},
     ["snomed:93880001", "icd10:C34", "icd10:C34.9"]),
    ("snomed:254637007", ["snomed:93880001"],
     {"en": "Non-small cell lung cancer", "de": "Nicht-kleinzelliges Lungenkarzinom",
      "fr": "Cancer du poumon non à petites cellules",
      "es": "Cáncer de pulmón de células no pequeñas",
      "it": "Carcinoma polmonare non a piccole cellule", "nl": "Niet-kleincellig longcarcinoom"},
     {"en": ["NSCLC"], "de": ["NSCLC"], "fr": ["CPNPC"], "es": ["CPCNP"], "it": ["NSCLC"]},
     ["snomed:254637007"]),
    ("snomed:254626006", ["snomed:254637007"],
     {"en": "Adenocarcinoma of lung", "de": "Adenokarzinom der Lunge",
      "fr": "Adénocarcinome pulmonaire", "es": "Adenocarcinoma de pulmón",
      "it": "Adenocarcinoma polmonare", "nl": "Adenocarcinoom van de long"},
     {"en": ["lung adenocarcinoma"], "de": ["Lungenadenokarzinom"]},
     ["snomed:254626006", "icdo3:8140/3"]),
    ("snomed:254634000", ["snomed:254637007"],
     {"en": "Squamous cell carcinoma of lung", "de": "Plattenepithelkarzinom der Lunge",
      "fr": "Carcinome épidermoïde du poumon", "es": "Carcinoma escamoso de pulmón",
      "it": "Carcinoma squamoso del polmone", "nl": "Plaveiselcelcarcinoom van de long"},
     {"en": ["lung squamous cell carcinoma"]}, ["snomed:254634000", "icdo3:8070/3"]),
    ("snomed:254632001", ["snomed:93880001"],
     {"en": "Small cell carcinoma of lung", "de": "Kleinzelliges Lungenkarzinom",
      "fr": "Cancer du poumon à petites cellules", "es": "Cáncer de pulmón de células pequeñas",
      "it": "Carcinoma polmonare a piccole cellule", "nl": "Kleincellig longcarcinoom"},
     {"en": ["SCLC", "small cell lung cancer"]}, ["snomed:254632001", "icdo3:8041/3"]),
    ("snomed:35917007", ["snomed:363346000"],
     {"en": "Adenocarcinoma", "de": "Adenokarzinom", "fr": "Adénocarcinome",
      "es": "Adenocarcinoma", "it": "Adenocarcinoma", "nl": "Adenocarcinoom"}, {},
     ["snomed:35917007"]),
    ("snomed:254837009", ["snomed:363346000"],
     {"en": "Malignant neoplasm of breast", "de": "Brustkrebs", "fr": "Cancer du sein",
      "es": "Cáncer de mama", "it": "Tumore della mammella", "nl": "Borstkanker",
      "pt": "Cancro da mama", "sv": "Bröstcancer", "pl": "Rak piersi"},
     {"en": ["breast cancer", "breast carcinoma"], "de": ["Mammakarzinom"],
      "it": ["carcinoma mammario", "tumore al seno"], "es": ["carcinoma de mama"],
      "pt": ["câncer de mama"]},
     ["snomed:254837009", "icd10:C50", "icd10:C50.9"]),
    ("snomed:408643008", ["snomed:254837009"],
     {"en": "Infiltrating duct carcinoma of breast", "de": "Invasives duktales Mammakarzinom",
      "fr": "Carcinome canalaire infiltrant du sein",
      "es": "Carcinoma ductal infiltrante de mama",
      "it": "Carcinoma duttale infiltrante della mammella",
      "nl": "Invasief ductaal carcinoom van de borst"},
     {"en": ["invasive ductal carcinoma", "IDC"]}, ["snomed:408643008", "icdo3:8500/3"]),
    ("snomed:399068003", ["snomed:363346000"],
     {"en": "Malignant tumour of prostate", "de": "Prostatakrebs", "fr": "Cancer de la prostate",
      "es": "Cáncer de próstata", "it": "Tumore della prostata", "nl": "Prostaatkanker",
      "pt": "Cancro da próstata", "sv": "Prostatacancer", "pl": "Rak prostaty"},
     {"en": ["prostate cancer", "prostate carcinoma", "malignant tumor of prostate"],
      "de": ["Prostatakarzinom"], "it": ["carcinoma prostatico"]},
     ["snomed:399068003", "icd10:C61", "eucaim:CLIN1000075"]),
    ("snomed:363406005", ["snomed:363346000"],
     {"en": "Malignant tumour of colon", "de": "Darmkrebs", "fr": "Cancer du côlon",
      "es": "Cáncer de colon", "it": "Tumore del colon", "nl": "Darmkanker"},
     {"en": ["colorectal cancer", "colon cancer", "malignant tumor of colon"],
      "de": ["Kolonkarzinom", "kolorektales Karzinom"], "fr": ["cancer colorectal"],
      "es": ["cáncer colorrectal"], "it": ["tumore del colon-retto", "carcinoma del colon"],
      "nl": ["dikkedarmkanker"]},
     ["snomed:363406005", "icd10:C18", "icd10:C18.9"]),
    ("snomed:363351006", ["snomed:363346000"],
     {"en": "Malignant tumour of rectum", "de": "Rektumkarzinom", "fr": "Cancer du rectum",
      "es": "Cáncer de recto", "it": "Tumore del retto", "nl": "Endeldarmkanker"},
     {"en": ["rectal cancer"]}, ["snomed:363351006", "icd10:C20"]),
    ("snomed:428061005", ["snomed:363346000"],
     {"en": "Malignant neoplasm of brain", "de": "Bösartiger Hirntumor",
      "fr": "Tumeur maligne du cerveau", "es": "Tumor cerebral maligno",
      "it": "Tumore maligno del cervello", "nl": "Kwaadaardige hersentumor"},
     {"en": ["brain cancer", "malignant brain tumour"], "de": ["Hirntumor"]},
     ["snomed:428061005", "icd10:C71", "icd10:C71.9"]),
    ("snomed:393563007", ["snomed:428061005"],
     {"en": "Glioblastoma multiforme", "de": "Glioblastom", "fr": "Glioblastome",
      "es": "Glioblastoma", "it": "Glioblastoma", "nl": "Glioblastoom"},
     {"en": ["glioblastoma", "GBM"]}, ["snomed:393563007", "icdo3:9440/3"]),
    ("snomed:93870000", ["snomed:363346000"],
     {"en": "Malignant neoplasm of liver", "de": "Leberkrebs", "fr": "Cancer du foie",
      "es": "Cáncer de hígado", "it": "Tumore del fegato", "nl": "Leverkanker"},
     {"en": ["liver cancer"]}, ["snomed:93870000", "icd10:C22"]),
    ("snomed:109841003", ["snomed:93870000"],
     {"en": "Liver cell carcinoma", "de": "Hepatozelluläres Karzinom",
      "fr": "Carcinome hépatocellulaire", "es": "Carcinoma hepatocelular",
      "it": "Carcinoma epatocellulare", "nl": "Hepatocellulair carcinoom"},
     {"en": ["hepatocellular carcinoma", "HCC"], "de": ["HCC"], "fr": ["CHC"]},
     ["snomed:109841003", "icd10:C22.0", "icdo3:8170/3"]),
    ("snomed:363418001", ["snomed:363346000"],
     {"en": "Malignant tumour of pancreas", "de": "Bauchspeicheldrüsenkrebs",
      "fr": "Cancer du pancréas", "es": "Cáncer de páncreas", "it": "Tumore del pancreas",
      "nl": "Alvleesklierkanker"},
     {"en": ["pancreatic cancer", "malignant tumor of pancreas"], "de": ["Pankreaskarzinom"]},
     ["snomed:363418001", "icd10:C25", "icd10:C25.9"]),
    ("snomed:363518003", ["snomed:363346000"],
     {"en": "Malignant tumour of kidney", "de": "Nierenkrebs", "fr": "Cancer du rein",
      "es": "Cáncer de riñón", "it": "Tumore del rene", "nl": "Nierkanker"},
     {"en": ["kidney cancer", "renal cancer"]}, ["snomed:363518003", "icd10:C64"]),
    ("icd10:C74", ["snomed:363346000"],
     {"en": "Malignant neoplasm of adrenal gland", "de": "Nebennierenkrebs",
      "fr": "Cancer de la glande surrénale", "es": "Cáncer de la glándula suprarrenal",
      "it": "Tumore della ghiandola surrenale", "nl": "Bijnierkanker"},
     {"en": ["adrenal cancer"]}, ["icd10:C74", "icd10:C74.9"]),
    ("snomed:372244006", ["snomed:363346000"],
     {"en": "Malignant melanoma", "de": "Malignes Melanom", "fr": "Mélanome malin",
      "es": "Melanoma maligno", "it": "Melanoma maligno", "nl": "Maligne melanoom"},
     {"en": ["melanoma"]}, ["snomed:372244006", "icd10:C43"]),
    ("snomed:118600007", ["snomed:363346000"],
     {"en": "Malignant lymphoma", "de": "Malignes Lymphom", "fr": "Lymphome malin",
      "es": "Linfoma maligno", "it": "Linfoma maligno", "nl": "Maligne lymfoom"},
     {"en": ["lymphoma"]}, ["snomed:118600007"]),
]

# DICOM code → (labels, alt labels); everything else in CID 29 gets its English meaning only
MODALITY_LABELS = {
    "CT": ({"de": "Computertomographie", "fr": "Tomodensitométrie",
            "es": "Tomografía computarizada", "it": "Tomografia computerizzata",
            "nl": "Computertomografie", "pt": "Tomografia computorizada"},
           {"en": ["CT", "CAT scan", "computed tomography"], "fr": ["scanner", "TDM"],
            "es": ["TC", "TAC"], "it": ["TC"], "de": ["CT"]}),
    "MR": ({"de": "Magnetresonanztomographie", "fr": "Imagerie par résonance magnétique",
            "es": "Resonancia magnética", "it": "Risonanza magnetica",
            "nl": "Magnetische resonantie", "pt": "Ressonância magnética"},
           {"en": ["MRI", "magnetic resonance imaging", "MR"], "de": ["MRT"], "fr": ["IRM"],
            "es": ["RM"], "it": ["RM"], "nl": ["MRI"]}),
    "PT": ({"de": "Positronen-Emissions-Tomographie",
            "fr": "Tomographie par émission de positons",
            "es": "Tomografía por emisión de positrones",
            "it": "Tomografia a emissione di positroni", "nl": "Positronemissietomografie"},
           {"en": ["PET", "PET scan"], "fr": ["TEP"], "es": ["PET"], "de": ["PET"]}),
    "MG": ({"de": "Mammographie", "fr": "Mammographie", "es": "Mamografía",
            "it": "Mammografia", "nl": "Mammografie"}, {"en": ["mammogram"]}),
    "US": ({"de": "Ultraschall", "fr": "Échographie", "es": "Ecografía", "it": "Ecografia",
            "nl": "Echografie"}, {"en": ["ultrasonography", "sonography"],
                                 "de": ["Sonographie"]}),
    "NM": ({"de": "Nuklearmedizin", "fr": "Médecine nucléaire", "es": "Medicina nuclear",
            "it": "Medicina nucleare", "nl": "Nucleaire geneeskunde"},
           {"en": ["scintigraphy", "SPECT"]}),
    "CR": ({"de": "Computerradiographie", "fr": "Radiographie numérisée",
            "es": "Radiografía computarizada", "it": "Radiografia computerizzata",
            "nl": "Computerradiografie"}, {"en": ["X-ray"]}),
    "DX": ({"de": "Digitale Radiographie", "fr": "Radiographie numérique",
            "es": "Radiografía digital", "it": "Radiografia digitale",
            "nl": "Digitale radiografie"}, {"en": ["X-ray", "radiograph"]}),
}
MODALITY_EXTRA_MATCHES = {"MR": ["eucaim:IMG1000022", "http://healthRI.com/dicom/modalities#MR"],
                          "CT": ["http://healthRI.com/dicom/modalities#CT"],
                          "US": ["http://healthRI.com/dicom/modalities#US"]}

# id, parents, SNOMED codes (CID 4031 first, then older codes in use), labels, alt labels
BODY_PARTS = [
    ("WHOLEBODY", [], ["38266002"], {"en": "Entire body", "de": "Ganzkörper",
                                     "fr": "Corps entier", "es": "Cuerpo entero",
                                     "it": "Corpo intero", "nl": "Heel lichaam"},
     {"en": ["whole body"]}),
    ("HEAD", [], ["69536005"], {"en": "Head", "de": "Kopf", "fr": "Tête", "es": "Cabeza",
                                "it": "Testa", "nl": "Hoofd"}, {}),
    ("BRAIN", ["HEAD"], ["12738006"], {"en": "Brain", "de": "Gehirn", "fr": "Cerveau",
                                       "es": "Cerebro", "it": "Cervello", "nl": "Hersenen"}, {}),
    ("HEADNECK", [], ["774007"], {"en": "Head and Neck", "de": "Kopf und Hals",
                                  "fr": "Tête et cou", "es": "Cabeza y cuello",
                                  "it": "Testa e collo", "nl": "Hoofd en hals"}, {}),
    ("NECK", [], ["45048000"], {"en": "Neck", "de": "Hals", "fr": "Cou", "es": "Cuello",
                                "it": "Collo", "nl": "Hals"}, {}),
    ("CHEST", [], ["816094009", "51185008"], {"en": "Chest", "de": "Thorax", "fr": "Thorax",
                                              "es": "Tórax", "it": "Torace", "nl": "Borstkas"},
     {"en": ["thorax"], "de": ["Brustkorb"]}),
    ("LUNG", ["CHEST"], ["39607008"], {"en": "Lung", "de": "Lunge", "fr": "Poumon",
                                       "es": "Pulmón", "it": "Polmone", "nl": "Long"}, {}),
    ("BREAST", ["CHEST"], ["76752008"], {"en": "Breast", "de": "Brust", "fr": "Sein",
                                         "es": "Mama", "it": "Mammella", "nl": "Borst"},
     {"de": ["Mamma"], "it": ["seno"]}),
    ("HEART", ["CHEST"], ["80891009"], {"en": "Heart", "de": "Herz", "fr": "Cœur",
                                        "es": "Corazón", "it": "Cuore", "nl": "Hart"}, {}),
    ("ABDOMEN", [], ["818981001", "818983003", "113345001"],
     {"en": "Abdomen", "de": "Abdomen", "fr": "Abdomen", "es": "Abdomen", "it": "Addome",
      "nl": "Buik"}, {"de": ["Bauch"]}),
    ("LIVER", ["ABDOMEN"], ["10200004"], {"en": "Liver", "de": "Leber", "fr": "Foie",
                                          "es": "Hígado", "it": "Fegato", "nl": "Lever"}, {}),
    ("PANCREAS", ["ABDOMEN"], ["15776009"], {"en": "Pancreas", "de": "Bauchspeicheldrüse",
                                             "fr": "Pancréas", "es": "Páncreas",
                                             "it": "Pancreas", "nl": "Alvleesklier"},
     {"de": ["Pankreas"]}),
    ("KIDNEY", ["ABDOMEN"], ["64033007"], {"en": "Kidney", "de": "Niere", "fr": "Rein",
                                           "es": "Riñón", "it": "Rene", "nl": "Nier"}, {}),
    ("STOMACH", ["ABDOMEN"], ["69695003"], {"en": "Stomach", "de": "Magen", "fr": "Estomac",
                                            "es": "Estómago", "it": "Stomaco", "nl": "Maag"}, {}),
    ("COLON", ["ABDOMEN"], ["71854001"], {"en": "Colon", "de": "Dickdarm", "fr": "Côlon",
                                          "es": "Colon", "it": "Colon", "nl": "Dikke darm"}, {}),
    ("PELVIS", [], ["816092008", "12921003"], {"en": "Pelvis", "de": "Becken", "fr": "Bassin",
                                               "es": "Pelvis", "it": "Bacino", "nl": "Bekken"},
     {"fr": ["pelvis"]}),
    ("PROSTATE", ["PELVIS"], ["41216001"], {"en": "Prostate", "de": "Prostata",
                                            "fr": "Prostate", "es": "Próstata",
                                            "it": "Prostata", "nl": "Prostaat"}, {}),
    ("BLADDER", ["PELVIS"], ["89837001"], {"en": "Bladder", "de": "Harnblase", "fr": "Vessie",
                                           "es": "Vejiga", "it": "Vescica", "nl": "Blaas"}, {}),
    ("RECTUM", ["PELVIS"], ["34402009"], {"en": "Rectum", "de": "Rektum", "fr": "Rectum",
                                          "es": "Recto", "it": "Retto", "nl": "Endeldarm"}, {}),
    ("SPINE", [], ["421060004"], {"en": "Spine", "de": "Wirbelsäule", "fr": "Rachis",
                                  "es": "Columna vertebral", "it": "Colonna vertebrale",
                                  "nl": "Wervelkolom"}, {}),
]
# EUCAIM codes from its segmentation-labels value set (BP1000233 is "Neck and chest" there,
# although the EUCAIM DCAT-AP example uses it for a prostate dataset)
BODY_EXTRA_MATCHES = {
    "PROSTATE": ["eucaim:BP1000021"],
    "CHEST": ["eucaim:BP1000067", "http://healthRI.com/dicom/bodyparts#chest"],
    "BREAST": ["eucaim:BP1000136"],
    "ABDOMEN": ["eucaim:BP1000173", "http://healthRI.com/dicom/bodyparts#abdomen"],
    "PELVIS": ["eucaim:BP1000092"],
    "BRAIN": ["eucaim:BP1000051"],
    "LIVER": ["eucaim:BP1000105"],
    "PANCREAS": ["eucaim:BP1000209"],
    "HEAD": ["http://healthRI.com/dicom/bodyparts#head"],
    "WHOLEBODY": ["http://healthRI.com/dicom/bodyparts#body"],
}


def _lit(text: str, lang: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + f'"@{lang}'


def _code_iri(code: str) -> str | None:
    system, _, value = code.partition(":")
    return {"snomed": SCT, "icd10": ICD10, "dicom": DCM, "eucaim": EUCAIM}.get(system, "") + \
        value if system in ("snomed", "icd10", "dicom", "eucaim") else None


def _concept(name: str, cid: str, parents: list[str], labels: dict[str, str],
             alts: dict[str, list[str]], codes: list[str], matches: list[str]) -> str:
    iri = f"<{BASE}{name}/{cid.replace(':', '-').replace('/', '-')}>"
    lines = [f"{iri} a skos:Concept ;", f"    skos:inScheme <{BASE}{name}> ;",
             f'    skos:notation "{cid}" ;']
    lines += [f"    skos:prefLabel {_lit(t, lang)} ;" for lang, t in sorted(labels.items())]
    lines += [f"    skos:altLabel {_lit(t, lang)} ;" for lang, ts in sorted(alts.items())
              for t in ts]
    lines += [f"    skos:broader <{BASE}{name}/{p.replace(':', '-').replace('/', '-')}> ;"
              for p in parents]
    lines += [f'    dct:identifier "{c}" ;' for c in codes]
    for match in matches:
        lines.append(f"    skos:exactMatch <{match}> ;")
    lines[-1] = lines[-1][:-2] + " ."
    return "\n".join(lines)


HEADER = """@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix dct: <http://purl.org/dc/terms/> .
# Generated by scripts/write-vocabularies.py; sources in SOURCES.md. Concept notations are the
# catalogue ids; dct:identifier lists codes as system:code.

"""


def _scheme(name: str, title: str) -> str:
    return f'<{BASE}{name}> a skos:ConceptScheme ;\n    dct:title "{title}"@en .\n\n'


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    blocks = []
    for cid, parents, labels, alts, codes in CONDITIONS:
        matches = [iri for c in codes if (iri := _code_iri(c))]
        blocks.append(_concept("conditions", cid, parents, labels, alts, codes, matches))
    (OUT / "conditions.ttl").write_text(HEADER + _scheme("conditions", "Cancer conditions")
                                        + "\n\n".join(blocks) + "\n")
    csv = (Path(__file__).resolve().parents[2] / "shared" / "data" / "ontology"
           / "dicom_CID29_acquisition_modality.csv")
    meanings = {}
    for line in csv.read_text().splitlines()[1:]:
        parts = line.split(",")
        meanings[parts[3]] = parts[4]
    blocks = []
    for code, meaning in sorted(meanings.items()):
        labels, alts = MODALITY_LABELS.get(code, ({}, {}))
        extra = MODALITY_EXTRA_MATCHES.get(code, [])
        matches = [f"{DCM}{code}"] + [_code_iri(m) or m for m in extra]
        codes = [f"dicom:{code}"] + [m for m in MODALITY_EXTRA_MATCHES.get(code, [])
                                     if m.startswith("eucaim:")]
        blocks.append(_concept("modalities", code, [], {"en": meaning, **labels}, alts, codes,
                               matches))
    (OUT / "modalities.ttl").write_text(HEADER + _scheme("modalities", "Imaging modalities")
                                        + "\n\n".join(blocks) + "\n")
    blocks = []
    for cid, parents, sct, labels, alts in BODY_PARTS:
        extra = BODY_EXTRA_MATCHES.get(cid, [])
        codes = [f"snomed:{c}" for c in sct] + [m for m in extra if m.startswith("eucaim:")]
        matches = [f"{SCT}{c}" for c in sct] + [_code_iri(m) or m for m in extra]
        blocks.append(_concept("body_parts", cid, parents, labels, alts, codes, matches))
    (OUT / "body_parts.ttl").write_text(HEADER + _scheme("body_parts", "Body parts")
                                        + "\n\n".join(blocks) + "\n")


if __name__ == "__main__":
    main()
