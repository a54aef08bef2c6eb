"""A realistic generated corpus of dataset descriptions, for search conformance and benchmarks.

30 providers in 15 EU countries; cancer types weighted by how often imaging collections cover
them, each with the modalities and body parts used for it in practice; an English title plus one
in the provider's language; log-normal cohort sizes; conditions mostly as SNOMED CT ids, some as
ICD-10 codes and a few as unknown local codes (which the catalogue must keep). Deterministic per
seed, and fast (plain ``random.Random``, tables precomputed): 100,000 datasets in seconds.
"""

from __future__ import annotations

import bisect
import functools
import itertools
import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from catalogue.model.dataset import Dataset, DatasetStatus

T = TypeVar("T")

#: the EHDS health category of imaging data (HealthDCAT-AP's vocabulary, as an IRI: the model
#: stores IRIs, and the export leaves out a bare code)
IMAGING_CATEGORY = ("https://hdeu-dcat.acceptance.data.health.europa.eu/resource/authority/"
                    "healthcategories/IMAGING")


@dataclass(frozen=True)
class Provider:
    id: str
    name: str
    country: str  # ISO 3166-1 alpha-2


#: (country, language of its titles, name): two per country, the first of each listed first
_PROVIDERS: tuple[tuple[str, str, str], ...] = (
    ("ES", "es", "Hospital Universitari i Politècnic La Fe"),
    ("DE", "de", "Deutsches Krebsforschungszentrum"),
    ("NL", "nl", "Antoni van Leeuwenhoek – Nederlands Kanker Instituut"),
    ("IT", "it", "Istituto Europeo di Oncologia"),
    ("GR", "el", "University General Hospital of Heraklion"),
    ("PT", "pt", "Instituto Português de Oncologia do Porto"),
    ("FR", "fr", "Gustave Roussy"),
    ("BE", "fr", "Institut Jules Bordet"),
    ("SE", "sv", "Karolinska Universitetssjukhuset"),
    ("PL", "pl", "Narodowy Instytut Onkologii im. Marii Skłodowskiej-Curie"),
    ("AT", "de", "Medizinische Universität Wien"),
    ("IE", "en", "St. James's Hospital Dublin"),
    ("FI", "fi", "Helsinki University Hospital"),
    ("CZ", "cs", "Masarykův onkologický ústav"),
    ("HU", "hu", "Országos Onkológiai Intézet"),
    ("ES", "es", "Hospital Universitario 12 de Octubre"),
    ("DE", "de", "Universitätsklinikum Heidelberg"),
    ("NL", "nl", "Radboudumc Nijmegen"),
    ("IT", "it", "Fondazione IRCCS Istituto Nazionale dei Tumori"),
    ("GR", "el", "Attikon University Hospital"),
    ("PT", "pt", "Fundação Champalimaud"),
    ("FR", "fr", "Centre Léon Bérard"),
    ("BE", "nl", "Universitair Ziekenhuis Leuven"),
    ("SE", "sv", "Akademiska sjukhuset Uppsala"),
    ("PL", "pl", "Wielkopolskie Centrum Onkologii"),
    ("AT", "de", "Universitätsklinikum Graz"),
    ("IE", "en", "Cork University Hospital"),
    ("FI", "fi", "Turku University Hospital"),
    ("CZ", "cs", "Všeobecná fakultní nemocnice v Praze"),
    ("HU", "hu", "Semmelweis Egyetem"),
)
COUNTRIES: tuple[str, ...] = tuple(dict.fromkeys(c for c, _, _ in _PROVIDERS))
_COUNTRY_LANGUAGE = {c: lang for c, lang, _ in reversed(_PROVIDERS)}
_PROVIDER_LANGUAGE = {name: lang for _, lang, name in _PROVIDERS}


def providers(count: int = 30, seed: int = 0) -> list[Provider]:
    """``count`` providers spread over the 15 countries (ids like ``prov-es-01``); beyond the 30
    named ones, generic imaging centres (named with ``seed``)."""
    rnd = random.Random(seed)  # noqa: S311 - test data, not security
    out: list[Provider] = []
    numbers: dict[str, int] = {}
    for i in range(count):
        if i < len(_PROVIDERS):
            country, _, name = _PROVIDERS[i]
        else:
            country = COUNTRIES[i % len(COUNTRIES)]
            name = f"{rnd.choice(('Regional', 'Metropolitan', 'Academic'))} Imaging Centre {i + 1}"
        numbers[country] = numbers.get(country, 0) + 1
        out.append(Provider(f"prov-{country.lower()}-{numbers[country]:02d}", name, country))
    return out


def _language(provider: Provider) -> str:
    return _PROVIDER_LANGUAGE.get(provider.name) or _COUNTRY_LANGUAGE.get(provider.country, "en")


# -- cancers ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cancer:
    """One cancer type: how common it is, how it is coded and imaged, and what it is called."""

    key: str
    weight: float
    snomed: tuple[tuple[str, float], ...]  # (id, weight): the general concept first
    icd10: str | None
    modalities: tuple[tuple[str, float], ...]  # (DICOM modality, probability); first = fallback
    extra_modalities: tuple[tuple[str, float], ...]
    body_parts: tuple[tuple[str, float], ...]  # (Body Part Examined, probability)
    region: str  # English phrase for descriptions
    sexes: tuple[str, ...] = ("female", "male")
    min_age: int = 18
    paediatric: float = 0.0  # share of paediatric cohorts
    names: tuple[tuple[str, str], ...] = ()  # (language, name as used in titles)


CANCERS: tuple[Cancer, ...] = (
    Cancer("lung cancer", 0.22,
           (("snomed:93880001", 0.3), ("snomed:254637007", 0.17), ("snomed:254626006", 0.4),
            ("snomed:254632001", 0.08), ("snomed:254634000", 0.05)), "icd10:C34.9",
           (("CT", 0.92), ("PT", 0.35)), (("CR", 0.05), ("DX", 0.04), ("MR", 0.04)),
           (("CHEST", 0.8), ("LUNG", 0.45)), "chest",
           names=(("en", "lung cancer"), ("de", "Lungenkrebs"), ("fr", "cancer du poumon"),
                  ("es", "cáncer de pulmón"), ("it", "tumore del polmone"),
                  ("nl", "longkanker"), ("pt", "cancro do pulmão"),
                  ("el", "καρκίνου του πνεύμονα"), ("pl", "rak płuca"), ("sv", "lungcancer"),
                  ("fi", "keuhkosyöpä"), ("cs", "karcinom plic"), ("hu", "tüdőrák"))),
    Cancer("breast cancer", 0.20,
           (("snomed:254837009", 0.7), ("snomed:408643008", 0.3)), "icd10:C50.9",
           (("MG", 0.6), ("MR", 0.5), ("US", 0.3)), (("PT", 0.04), ("CT", 0.04)),
           (("BREAST", 1.0),), "breast", sexes=("female",), min_age=25,
           names=(("en", "breast cancer"), ("de", "Brustkrebs"), ("fr", "cancer du sein"),
                  ("es", "cáncer de mama"), ("it", "tumore della mammella"),
                  ("nl", "borstkanker"), ("pt", "cancro da mama"),
                  ("el", "καρκίνου του μαστού"), ("pl", "rak piersi"), ("sv", "bröstcancer"),
                  ("fi", "rintasyöpä"), ("cs", "karcinom prsu"), ("hu", "emlőrák"))),
    Cancer("prostate cancer", 0.15, (("snomed:399068003", 1.0),), "icd10:C61",
           (("MR", 0.85), ("PT", 0.3)), (("CT", 0.08), ("NM", 0.05), ("US", 0.04)),
           (("PROSTATE", 0.75), ("PELVIS", 0.55)), "prostate", sexes=("male",), min_age=40,
           names=(("en", "prostate cancer"), ("de", "Prostatakrebs"),
                  ("fr", "cancer de la prostate"), ("es", "cáncer de próstata"),
                  ("it", "tumore della prostata"), ("nl", "prostaatkanker"),
                  ("pt", "cancro da próstata"), ("el", "καρκίνου του προστάτη"),
                  ("pl", "rak prostaty"), ("sv", "prostatacancer"), ("fi", "eturauhassyöpä"),
                  ("cs", "karcinom prostaty"), ("hu", "prosztatarák"))),
    Cancer("colorectal cancer", 0.12, (("snomed:363406005", 1.0),), "icd10:C18.9",
           (("CT", 0.8), ("MR", 0.45)), (("PT", 0.06), ("US", 0.03)),
           (("ABDOMEN", 0.7), ("PELVIS", 0.55), ("COLON", 0.3), ("CHEST", 0.15)),
           "abdomen and pelvis",
           names=(("en", "colorectal cancer"), ("de", "Darmkrebs"),
                  ("fr", "cancer colorectal"), ("es", "cáncer colorrectal"),
                  ("it", "tumore del colon-retto"), ("nl", "darmkanker"),
                  ("pt", "cancro colorretal"), ("el", "καρκίνου του παχέος εντέρου"),
                  ("pl", "rak jelita grubego"), ("sv", "kolorektal cancer"),
                  ("fi", "suolistosyöpä"), ("cs", "kolorektální karcinom"),
                  ("hu", "vastagbélrák"))),
    Cancer("glioblastoma", 0.07, (("snomed:393563007", 1.0),), "icd10:C71.9",
           (("MR", 1.0),), (("PT", 0.08), ("CT", 0.1)),
           (("BRAIN", 0.95), ("HEAD", 0.3)), "brain", paediatric=0.08,
           names=(("en", "glioblastoma"), ("de", "Glioblastom"), ("fr", "glioblastome"),
                  ("es", "glioblastoma"), ("it", "glioblastoma"), ("nl", "glioblastoom"),
                  ("pt", "glioblastoma"), ("el", "γλοιοβλαστώματος"),
                  ("pl", "glejak wielopostaciowy"), ("sv", "glioblastom"),
                  ("fi", "glioblastooma"), ("cs", "glioblastom"), ("hu", "glioblasztóma"))),
    Cancer("hepatocellular carcinoma", 0.06, (("snomed:109841003", 1.0),), "icd10:C22.0",
           (("CT", 0.75), ("MR", 0.55)), (("US", 0.12), ("PT", 0.03)),
           (("LIVER", 0.8), ("ABDOMEN", 0.55)), "liver",
           names=(("en", "hepatocellular carcinoma"), ("de", "Leberzellkarzinom"),
                  ("fr", "carcinome hépatocellulaire"), ("es", "carcinoma hepatocelular"),
                  ("it", "carcinoma epatocellulare"), ("nl", "hepatocellulair carcinoom"),
                  ("pt", "carcinoma hepatocelular"), ("el", "ηπατοκυτταρικού καρκινώματος"),
                  ("pl", "rak wątrobowokomórkowy"), ("sv", "hepatocellulär cancer"),
                  ("fi", "maksasolusyöpä"), ("cs", "hepatocelulární karcinom"),
                  ("hu", "hepatocelluláris karcinóma"))),
    Cancer("pancreatic cancer", 0.05, (("snomed:363418001", 1.0),), "icd10:C25.9",
           (("CT", 0.85), ("MR", 0.4)), (("PT", 0.05), ("US", 0.05)),
           (("PANCREAS", 0.7), ("ABDOMEN", 0.7)), "pancreas",
           names=(("en", "pancreatic cancer"), ("de", "Bauchspeicheldrüsenkrebs"),
                  ("fr", "cancer du pancréas"), ("es", "cáncer de páncreas"),
                  ("it", "tumore del pancreas"), ("nl", "alvleesklierkanker"),
                  ("pt", "cancro do pâncreas"), ("el", "καρκίνου του παγκρέατος"),
                  ("pl", "rak trzustki"), ("sv", "bukspottkörtelcancer"),
                  ("fi", "haimasyöpä"), ("cs", "karcinom slinivky břišní"),
                  ("hu", "hasnyálmirigyrák"))),
    Cancer("kidney cancer", 0.05, (("snomed:363518003", 1.0),), "icd10:C64",
           (("CT", 0.9), ("MR", 0.3)), (("US", 0.1), ("PT", 0.03)),
           (("KIDNEY", 0.8), ("ABDOMEN", 0.6)), "kidneys", paediatric=0.05,
           names=(("en", "kidney cancer"), ("de", "Nierenkrebs"), ("fr", "cancer du rein"),
                  ("es", "cáncer renal"), ("it", "tumore del rene"), ("nl", "nierkanker"),
                  ("pt", "cancro do rim"), ("el", "καρκίνου του νεφρού"), ("pl", "rak nerki"),
                  ("sv", "njurcancer"), ("fi", "munuaissyöpä"), ("cs", "karcinom ledviny"),
                  ("hu", "veserák"))),
    Cancer("melanoma", 0.04, (("snomed:372244006", 1.0),), "icd10:C43",
           (("PT", 0.7), ("CT", 0.5)), (("MR", 0.2), ("US", 0.05)),
           (("WHOLEBODY", 0.8), ("CHEST", 0.2), ("BRAIN", 0.1)), "whole body",
           names=(("en", "melanoma"), ("de", "Melanom"), ("fr", "mélanome"),
                  ("es", "melanoma"), ("it", "melanoma"), ("nl", "melanoom"),
                  ("pt", "melanoma"), ("el", "μελανώματος"), ("pl", "czerniak"),
                  ("sv", "melanom"), ("fi", "melanooma"), ("cs", "melanom"),
                  ("hu", "melanóma"))),
    Cancer("lymphoma", 0.04, (("snomed:118600007", 1.0),), None,
           (("PT", 0.85), ("CT", 0.6)), (("MR", 0.05), ("NM", 0.03)),
           (("WHOLEBODY", 0.8), ("CHEST", 0.25), ("ABDOMEN", 0.2)), "whole body",
           paediatric=0.12,
           names=(("en", "lymphoma"), ("de", "Lymphom"), ("fr", "lymphome"),
                  ("es", "linfoma"), ("it", "linfoma"), ("nl", "lymfoom"), ("pt", "linfoma"),
                  ("el", "λεμφώματος"), ("pl", "chłoniak"), ("sv", "lymfom"),
                  ("fi", "lymfooma"), ("cs", "lymfom"), ("hu", "limfóma"))),
)

#: title templates per language ({cancer}: the cancer's name; {mod}: modalities, local names)
TITLES: dict[str, tuple[str, ...]] = {
    "en": ("{Cancer} {mod} cohort", "{mod} imaging of {cancer}", "{Cancer} {mod} collection",
           "{Cancer}: {topic} dataset ({mod})", "{Cancer} {mod} imaging archive"),
    "de": ("{Cancer}-{mod}-Kohorte", "{mod}-Bildgebung bei {cancer}"),
    "fr": ("Cohorte {mod} du {cancer}", "Imagerie {mod} du {cancer}"),
    "es": ("Cohorte de {mod} de {cancer}", "Imágenes de {mod} en {cancer}"),
    "it": ("Coorte {mod}: {cancer}", "Imaging {mod} del {cancer}"),
    "nl": ("{Cancer} {mod}-cohort", "{mod}-beeldvorming bij {cancer}"),
    "pt": ("Coorte de {mod} de {cancer}", "Imagem de {mod} em {cancer}"),
    "el": ("Απεικόνιση {mod} {cancer}", "Κοόρτη {mod} {cancer}"),
    "pl": ("{Cancer} – obrazowanie {mod}", "Kohorta {mod}: {cancer}"),
    "sv": ("{Cancer} – {mod}-kohort", "{mod}-avbildning vid {cancer}"),
    "fi": ("{Cancer}: {mod}-kuvantaminen", "{Cancer} – {mod}-kohortti"),
    "cs": ("{Cancer} – zobrazování {mod}", "Kohorta {mod}: {cancer}"),
    "hu": ("{Cancer} – {mod} képalkotás", "{Cancer} {mod} kohorsz"),
}
#: how modalities are written in titles, per language (PET, else the code, otherwise)
_MODALITY_NAMES: dict[str, dict[str, str]] = {
    "en": {"MR": "MRI", "PT": "PET", "MG": "mammography", "US": "ultrasound", "NM": "SPECT",
           "CR": "radiography", "DX": "radiography"},
    "de": {"MR": "MRT", "MG": "Mammographie", "US": "Ultraschall"},
    "fr": {"CT": "TDM", "MR": "IRM", "PT": "TEP", "MG": "mammographie", "US": "échographie"},
    "es": {"CT": "TC", "MR": "RM", "MG": "mamografía", "US": "ecografía"},
    "it": {"CT": "TC", "MR": "RM", "MG": "mammografia", "US": "ecografia"},
    "nl": {"MR": "MRI", "MG": "mammografie", "US": "echografie"},
    "pt": {"CT": "TC", "MR": "RM", "MG": "mamografia", "US": "ecografia"},
    "el": {"MR": "MRI", "MG": "μαστογραφίας", "US": "υπερήχων"},
    "pl": {"CT": "TK", "MG": "mammografia", "US": "USG"},
    "sv": {"CT": "DT", "MG": "mammografi", "US": "ultraljud"},
    "fi": {"CT": "TT", "MR": "MK", "MG": "mammografia", "US": "ultraääni"},
    "cs": {"MG": "mamografie", "US": "ultrazvuk"},
    "hu": {"MG": "mammográfia", "US": "ultrahang"},
}
_REGIONS = {"CHEST": "chest", "LUNG": "lungs", "BREAST": "breast", "PROSTATE": "prostate",
            "ABDOMEN": "abdomen", "PELVIS": "pelvis", "BRAIN": "brain", "HEAD": "head",
            "LIVER": "liver", "PANCREAS": "pancreas", "KIDNEY": "kidneys", "COLON": "colon",
            "WHOLEBODY": "whole body"}

#: (topic as written in titles, keyword, sentence for descriptions)
TOPICS: tuple[tuple[str, str, str], ...] = (
    ("radiomics", "radiomics",
     "Tumours were delineated by two radiologists and radiomics features are provided."),
    ("segmentation", "segmentation",
     "Expert segmentation masks of the primary tumour accompany every study."),
    ("AI development", "AI",
     "The collection was curated for training and validating AI models."),
    ("longitudinal follow-up", "longitudinal",
     "Patients have longitudinal follow-up imaging over several years."),
    ("treatment response", "treatment response",
     "Baseline and post-treatment scans allow treatment response assessment."),
    ("screening", "screening",
     "Examinations come from an organised screening programme."),
    ("staging", "staging",
     "Imaging was acquired for initial staging before treatment."),
    ("survival", "survival",
     "Overall and progression-free survival are linked to each patient."),
)
_OPENINGS = (
    "{Design} cohort of {n} patients with {cancer} imaged with {mods} of the {region} at "
    "{institution}.",
    "{Mods} examinations of the {region} from {n} patients diagnosed with {cancer} at "
    "{institution} between {start} and {end}.",
    "This collection holds {mods} studies of patients treated for {cancer} at {institution}.",
)
_CLOSINGS = (
    "", "", "Images are pseudonymised and available through the data access committee.",
    "Part of a multicentre European study.", "Clinical data follow the OMOP common data model.",
    "Images were collected in routine clinical care.",
)
_DESIGNS = ("Retrospective", "Prospective", "Multicentre", "Single-centre")
MANUFACTURERS = ("Siemens Healthineers", "GE HealthCare", "Philips", "Canon Medical",
                 "Fujifilm", "United Imaging", "Hologic")
_MANUFACTURER_WEIGHTS = (0.32, 0.28, 0.22, 0.1, 0.04, 0.02, 0.02)
ACCESS = "http://publications.europa.eu/resource/authority/access-right/"
_ACCESS_LEVELS = ("RESTRICTED", "PUBLIC", "NON_PUBLIC")
LICENCE = "http://publications.europa.eu/resource/authority/licence/"
_LICENCES = ("CC_BY_4_0", "CC_BY_NC_4_0", "CC_BY_NC_SA_4_0")

_START = datetime(2015, 1, 1, tzinfo=UTC)
_END = datetime(2026, 10, 31, tzinfo=UTC)
_SPAN_SECONDS = int((_END - _START).total_seconds())
_NAMES = {c.key: dict(c.names) for c in CANCERS}
_ADULT_AGES = (18, 20, 25, 30, 35, 40, 45, 50, 55)


class _Draw:
    """The few draws the generator needs, on ``random.Random`` but without the layered checks
    of ``randint``/``choices`` (several times faster; still deterministic per seed)."""

    def __init__(self, seed: int) -> None:
        self.random = random.Random(seed).random  # noqa: S311 - test data, not security

    def below(self, n: int) -> int:
        return int(self.random() * n)

    def between(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``."""
        return low + int(self.random() * (high - low + 1))

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.random() * len(options))]

    def weighted(self, options: Sequence[T], cumulative: Sequence[float]) -> T:
        return options[bisect.bisect(cumulative, self.random() * cumulative[-1])]

    def chance(self, p: float) -> bool:
        return self.random() < p

    def each(self, options: tuple[tuple[str, float], ...], at_least_one: bool) -> list[str]:
        """Each option with its probability (the first one if none came up and
        ``at_least_one``)."""
        chosen = [value for value, p in options if self.random() < p]
        if not chosen and at_least_one:
            chosen = [options[0][0]]
        return chosen

    def lognormal(self, median: float, sigma: float) -> float:
        # Box-Muller on two uniform draws
        u = 1.0 - self.random()
        z = math.sqrt(-2.0 * math.log(u)) * math.cos(2.0 * math.pi * self.random())
        return median * math.exp(sigma * z)


def _cumulative(weights: Sequence[float]) -> tuple[float, ...]:
    return tuple(itertools.accumulate(weights))


_CANCER_CUM = _cumulative([c.weight for c in CANCERS])
_SNOMED = {c.key: (tuple(code for code, _ in c.snomed), _cumulative([w for _, w in c.snomed]))
           for c in CANCERS}
_MANUFACTURER_CUM = _cumulative(_MANUFACTURER_WEIGHTS)
_ACCESS_CUM = _cumulative((0.7, 0.18, 0.12))


@functools.cache
def _modality_phrase(modalities: tuple[str, ...], lang: str) -> str:
    """How a title or description names the first two modalities (PET before CT)."""
    shown = list(modalities[:2])
    if "PT" in modalities and "CT" in modalities:
        shown = ["PT", "CT"]
    names = {"PT": "PET", **_MODALITY_NAMES.get(lang, {})}
    joiner = "-" if lang in ("fr", "es", "pt", "it") else "/"
    return joiner.join(names.get(m, m) for m in shown)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _title(draw: _Draw, cancer: Cancer, modalities: tuple[str, ...], lang: str,
           topic: str) -> str:
    name = _NAMES[cancer.key].get(lang, cancer.key)
    return draw.pick(TITLES[lang]).format(Cancer=_cap(name), cancer=name, topic=topic,
                                          mod=_modality_phrase(modalities, lang))


def _condition(draw: _Draw, cancer: Cancer) -> str:
    """Mostly SNOMED CT; some ICD-10 (~15%); a few unknown local codes (~2%)."""
    roll = draw.random()
    if roll < 0.02:
        return f"local:ONC-{draw.between(100, 999)}"
    if roll < 0.17 and cancer.icd10:
        return cancer.icd10
    codes, cumulative = _SNOMED[cancer.key]
    return codes[0] if len(codes) == 1 else draw.weighted(codes, cumulative)


def generate_datasets(n: int, seed: int = 0,
                      provs: list[Provider] | None = None) -> Iterator[Dataset]:
    """``n`` published/draft/withdrawn dataset descriptions (no ``id``: the store assigns it)."""
    draw = _Draw(seed)
    provs = provs or providers(seed=seed)
    for i in range(n):
        provider = draw.pick(provs)
        lang = _language(provider)
        cancers = [draw.weighted(CANCERS, _CANCER_CUM)]
        if draw.chance(0.11):  # ~10% of collections cover two cancer types
            other = draw.weighted(CANCERS, _CANCER_CUM)
            if other is not cancers[0]:
                cancers.append(other)
        main = cancers[0]
        conditions: list[str] = []
        found: list[str] = []
        parts: list[str] = []
        sexes: set[str] = set()
        for cancer in cancers:
            conditions.append(_condition(draw, cancer))
            found += draw.each(cancer.modalities, True)
            found += draw.each(cancer.extra_modalities, False)
            parts += draw.each(cancer.body_parts, True)
            sexes.update(cancer.sexes)
        if "PT" in found and "CT" not in found and draw.chance(0.9):
            found.append("CT")  # PET/CT rather than PET/MR
        if "PT" in found and "WHOLEBODY" not in parts and draw.chance(0.4):
            parts.append("WHOLEBODY")
        modalities = tuple(dict.fromkeys(found))
        body_parts = list(dict.fromkeys(parts))
        if main.key == "breast cancer" and len(cancers) == 1 and draw.chance(0.03):
            sexes.add("male")  # male breast cancer
        first = draw.below(len(TOPICS))
        second = (first + 1 + draw.below(len(TOPICS) - 1)) % len(TOPICS)
        topics = (TOPICS[first], TOPICS[second])

        title = {"en": _title(draw, main, modalities, "en", topics[0][0])}
        if lang != "en":
            title[lang] = _title(draw, main, modalities, lang, topics[0][0])

        individuals = max(10, min(50_000, round(draw.lognormal(300, 1.2))))
        first_year = draw.between(2005, 2024)
        last_year = min(2026, first_year + draw.between(1, 8))
        mods = _modality_phrase(modalities, "en")
        sentences = [draw.pick(_OPENINGS).format(
            Design=draw.pick(_DESIGNS), n=f"{individuals:,}",
            cancer=" and ".join(c.key for c in cancers), mods=mods, Mods=_cap(mods),
            region=" and ".join(_REGIONS[b] for b in body_parts[:2]),
            institution=provider.name, start=first_year, end=last_year), topics[0][2]]
        if draw.chance(0.5):
            sentences.append(topics[1][2])
        closing = draw.pick(_CLOSINGS)
        if closing and len(sentences) < 3:
            sentences.append(closing)

        keywords = [c.key for c in cancers]
        keywords += [_MODALITY_NAMES["en"].get(m, m) for m in modalities[:2]]
        keywords += [t[1] for t in topics][: draw.between(1, 2)]
        if draw.chance(0.5):
            keywords.append(_REGIONS[body_parts[0]])
        keywords = list(dict.fromkeys(keywords))[:6]
        if len(keywords) < 3:
            keywords.append("medical imaging")

        if draw.chance(main.paediatric):
            low, high = draw.pick((0, 0, 5)), draw.pick((15, 20))
        else:  # adults: from 18, or a 5-year step
            low = max(main.min_age, draw.pick(_ADULT_AGES))
            high = min(90, low - low % 5 + 5 * draw.between(6, 14))

        roll = draw.random()
        status = (DatasetStatus.PUBLISHED if roll < 0.88 else
                  DatasetStatus.DRAFT if roll < 0.96 else DatasetStatus.WITHDRAWN)
        # recent descriptions are more common (the density grows linearly with time)
        modified = _START + timedelta(seconds=int(_SPAN_SECONDS * math.sqrt(draw.random())))
        issued = max(_START, modified - timedelta(days=draw.between(0, 1500)))
        access = draw.weighted(_ACCESS_LEVELS, _ACCESS_CUM)
        licence = None
        if draw.chance(0.8 if access == "PUBLIC" else 0.12):
            licence = LICENCE + draw.pick(_LICENCES)
        manufacturers = list(dict.fromkeys(
            draw.weighted(MANUFACTURERS, _MANUFACTURER_CUM) for _ in range(draw.between(1, 3))))
        yield Dataset(
            identifier=f"{provider.id}-ds-{i:06d}",
            organisation_id=provider.id,
            title=title,
            description={"en": " ".join(sentences)},
            status=status,
            keywords=keywords,
            health_categories=[IMAGING_CATEGORY] if draw.chance(0.9) else [],
            conditions=list(dict.fromkeys(conditions)),
            modalities=list(modalities),
            body_parts=body_parts,
            manufacturers=manufacturers,
            countries=[provider.country],
            sexes=sorted(sexes),
            access_rights=ACCESS + access,
            licence=licence,
            number_of_individuals=individuals,
            number_of_studies=round(individuals * (1.0 + 4.0 * draw.random())),
            min_age=low,
            max_age=high,
            temporal_start=date(first_year, draw.between(1, 12), 1),
            temporal_end=date(last_year, draw.between(1, 6 if last_year == 2026 else 12), 28),
            issued=issued,
            modified=modified,
        )
