"""A realistic generated corpus of dataset descriptions, for search conformance and benchmarks.

30 providers in 15 EU countries; cancer types by prevalence, with the modalities and body parts
used for them in practice; multilingual titles; log-normal cohort sizes; codes mostly SNOMED CT,
some ICD-10, a few unknown local codes (which the catalogue keeps). Deterministic per seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from catalogue.model.dataset import Dataset, DatasetStatus

COUNTRIES = ["ES", "DE", "NL", "IT", "GR", "PT", "FR", "BE", "SE", "PL", "AT", "IE", "FI", "CZ",
             "HU"]
LANGUAGE = {"ES": "es", "DE": "de", "NL": "nl", "IT": "it", "GR": "el", "PT": "pt", "FR": "fr",
            "BE": "fr", "SE": "sv", "PL": "pl", "AT": "de", "IE": "en", "FI": "fi", "CZ": "cs",
            "HU": "hu"}
INSTITUTIONS = ["University Hospital", "Cancer Centre", "Medical Centre", "Oncology Institute",
                "Research Hospital", "Imaging Biobank"]
CITIES = {"ES": ["Valencia", "Madrid"], "DE": ["Heidelberg", "Berlin"],
          "NL": ["Amsterdam", "Nijmegen"], "IT": ["Milan", "Turin"],
          "GR": ["Heraklion", "Athens"], "PT": ["Lisbon", "Porto"], "FR": ["Paris", "Lyon"],
          "BE": ["Brussels", "Leuven"], "SE": ["Stockholm", "Uppsala"],
          "PL": ["Warsaw", "Krakow"], "AT": ["Vienna", "Graz"], "IE": ["Dublin", "Cork"],
          "FI": ["Helsinki", "Oulu"], "CZ": ["Prague", "Brno"], "HU": ["Budapest", "Pécs"]}


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    country: str


@dataclass(frozen=True)
class Cancer:
    key: str
    weight: float
    codes: tuple[str, ...]          # SNOMED ids, general first, then subtypes
    icd10: str
    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    sexes: tuple[str, ...] | None
    titles: dict[str, str]


CANCERS = [
    Cancer("lung cancer", 0.24, ("snomed:93880001", "snomed:254637007", "snomed:254626006",
                                 "snomed:254626006", "snomed:254632001"), "icd10:C34.9",
           ("CT", "PT"), ("CHEST", "LUNG"), None,
           {"en": "Lung cancer CT cohort", "de": "Lungenkrebs-CT-Kohorte",
            "fr": "Cohorte TDM du cancer du poumon", "es": "Cohorte de TC de cáncer de pulmón",
            "it": "Coorte TC del tumore del polmone", "nl": "Longkanker CT-cohort",
            "pt": "Coorte de TC de cancro do pulmão", "sv": "Lungcancer DT-kohort"}),
    Cancer("breast cancer", 0.22, ("snomed:254837009", "snomed:408643008"), "icd10:C50.9",
           ("MG", "MR", "US"), ("BREAST",), ("female",),
           {"en": "Breast cancer imaging collection", "de": "Brustkrebs-Bildgebung",
            "fr": "Imagerie du cancer du sein", "es": "Imagen de cáncer de mama",
            "it": "Imaging del tumore della mammella", "nl": "Borstkanker beeldvorming",
            "pt": "Imagem de cancro da mama", "sv": "Bröstcancer bilddiagnostik"}),
    Cancer("prostate cancer", 0.18, ("snomed:399068003",), "icd10:C61", ("MR", "PT"),
           ("PROSTATE", "PELVIS"), ("male",),
           {"en": "Prostate cancer MRI", "de": "Prostatakrebs-MRT",
            "fr": "IRM du cancer de la prostate", "es": "RM de cáncer de próstata",
            "it": "RM del tumore della prostata", "nl": "Prostaatkanker MRI",
            "pt": "RM de cancro da próstata", "sv": "Prostatacancer MR"}),
    Cancer("colorectal cancer", 0.14, ("snomed:363406005",), "icd10:C18.9", ("CT", "MR"),
           ("ABDOMEN", "PELVIS", "COLON"), None,
           {"en": "Colorectal cancer staging imaging", "de": "Darmkrebs-Staging",
            "fr": "Bilan d'imagerie du cancer colorectal",
            "es": "Estadificación de cáncer de colon",
            "it": "Stadiazione del tumore del colon", "nl": "Darmkanker stadiëring"}),
    Cancer("glioblastoma", 0.08, ("snomed:393563007",), "icd10:C71.9", ("MR",),
           ("BRAIN", "HEAD"), None,
           {"en": "Glioblastoma MRI cohort", "de": "Glioblastom-MRT-Kohorte",
            "fr": "Cohorte IRM de glioblastome", "es": "Cohorte de RM de glioblastoma",
            "it": "Coorte RM di glioblastoma", "nl": "Glioblastoom MRI-cohort"}),
    Cancer("hepatocellular carcinoma", 0.07, ("snomed:109841003",), "icd10:C22.0", ("CT", "MR"),
           ("LIVER", "ABDOMEN"), None,
           {"en": "Hepatocellular carcinoma multiphase CT", "de": "Leberzellkarzinom-CT",
            "fr": "TDM du carcinome hépatocellulaire", "es": "TC de carcinoma hepatocelular",
            "it": "TC del carcinoma epatocellulare", "nl": "Levercelcarcinoom CT"}),
    Cancer("pancreatic cancer", 0.07, ("snomed:363418001",), "icd10:C25.9", ("CT", "MR"),
           ("PANCREAS", "ABDOMEN"), None,
           {"en": "Pancreatic cancer CT", "de": "Bauchspeicheldrüsenkrebs-CT",
            "fr": "TDM du cancer du pancréas", "es": "TC de cáncer de páncreas",
            "it": "TC del tumore del pancreas", "nl": "Alvleesklierkanker CT"}),
]
TOPICS = ["radiomics", "segmentation", "treatment response", "longitudinal follow-up",
          "AI model training", "tumours annotated by radiologists", "screening", "staging"]
MANUFACTURERS = ["Siemens Healthineers", "GE HealthCare", "Philips", "Canon Medical", "Fujifilm"]
ACCESS = "http://publications.europa.eu/resource/authority/access-right/"
LICENCES = ["http://publications.europa.eu/resource/authority/licence/CC_BY_4_0",
            "http://publications.europa.eu/resource/authority/licence/CC_BY_NC_4_0"]


def providers(count: int = 30, seed: int = 0) -> list[Provider]:
    """``count`` providers spread over the 15 countries (ids like ``prov-es-01``)."""
    rnd = random.Random(seed)  # noqa: S311 - test data, not security
    out = []
    for i in range(count):
        country = COUNTRIES[i % len(COUNTRIES)]
        number = i // len(COUNTRIES) + 1
        city = CITIES[country][(number - 1) % 2]
        out.append(Provider(f"prov-{country.lower()}-{number:02d}",
                            f"{city} {rnd.choice(INSTITUTIONS)}", country))
    return out


def generate_datasets(n: int, seed: int = 0,
                      provs: list[Provider] | None = None) -> Iterator[Dataset]:
    rnd = random.Random(seed)  # noqa: S311 - test data, not security
    provs = provs or providers(seed=seed)
    weights = [c.weight for c in CANCERS]
    start = datetime(2015, 1, 1, tzinfo=UTC)
    span = (datetime(2026, 10, 1, tzinfo=UTC) - start).total_seconds()
    for i in range(n):
        provider = provs[rnd.randrange(len(provs))]
        cancers = [rnd.choices(CANCERS, weights)[0]]
        if rnd.random() < 0.10:
            other = rnd.choices(CANCERS, weights)[0]
            if other is not cancers[0]:
                cancers.append(other)
        conditions: list[str] = []
        modalities: list[str] = []
        body_parts: list[str] = []
        for cancer in cancers:
            roll = rnd.random()
            if roll < 0.02:
                code = f"local:ONC-{rnd.randint(1, 40)}"
            elif roll < 0.17:
                code = cancer.icd10
            else:
                code = rnd.choice(cancer.codes)
            conditions.append(code)
            modalities += rnd.sample(cancer.modalities, rnd.randint(1, len(cancer.modalities)))
            body_parts += rnd.sample(cancer.body_parts, rnd.randint(1, len(cancer.body_parts)))
        main = cancers[0]
        lang = LANGUAGE[provider.country]
        title = {"en": f"{main.titles['en']} ({provider.name})"}
        if lang != "en" and lang in main.titles:
            title[lang] = f"{main.titles[lang]} – {provider.name}"
        topic = rnd.sample(TOPICS, 2)
        mods = ", ".join(dict.fromkeys(modalities))
        description = {"en": (
            f"Retrospective {main.key} cohort imaged with {mods} at {provider.name}. "
            f"Includes {topic[0]} and {topic[1]}. "
            + rnd.choice(["Clinical outcomes are linked.", "Studies are pseudonymised.",
                          "Collected in routine care.", "Part of a multicentre study."]))}
        individuals = max(10, min(50_000, int(math.exp(rnd.gauss(math.log(300), 1.1)))))
        low = rnd.choice([0, 5, 10]) if rnd.random() < 0.05 else rnd.choice(
            [18, 20, 25, 30, 35, 40, 45, 50])
        high = min(100, low + 5 * rnd.randint(4, 12))
        status_roll = rnd.random()
        status = DatasetStatus.PUBLISHED if status_roll < 0.88 else (
            DatasetStatus.DRAFT if status_roll < 0.96 else DatasetStatus.WITHDRAWN)
        modified = start + timedelta(seconds=span * math.sqrt(rnd.random()))
        first_year = rnd.randint(2005, 2022)
        yield Dataset(
            identifier=f"{provider.id}-ds-{i:06d}",
            organisation_id=provider.id,
            title=title,
            description=description,
            status=status,
            keywords=list(dict.fromkeys([main.key, *modalities[:2], *topic]))[:6],
            health_categories=["IMAGING"],
            conditions=list(dict.fromkeys(conditions)),
            modalities=list(dict.fromkeys(modalities)),
            body_parts=list(dict.fromkeys(body_parts)),
            manufacturers=rnd.sample(MANUFACTURERS, rnd.randint(1, 2)),
            countries=[provider.country],
            sexes=list(main.sexes) if main.sexes and len(cancers) == 1 else ["female", "male"],
            access_rights=ACCESS + rnd.choices(["RESTRICTED", "PUBLIC", "NON_PUBLIC"],
                                               [0.7, 0.15, 0.15])[0],
            licence=rnd.choice(LICENCES) if rnd.random() < 0.3 else None,
            number_of_individuals=individuals,
            number_of_studies=individuals * rnd.randint(1, 5),
            min_age=low,
            max_age=high,
            temporal_start=date(first_year, rnd.randint(1, 12), 1),
            temporal_end=date(min(2026, first_year + rnd.randint(1, 6)), rnd.randint(1, 12), 28),
            issued=modified - timedelta(days=rnd.randint(0, 900)),
            modified=modified,
        )
