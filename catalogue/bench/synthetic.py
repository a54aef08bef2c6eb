"""Synthetic catalogue content for benchmarks and tests: providers, published datasets and their
study-level records (subjects, imaging studies, conditions), written straight into PostgreSQL
with ``COPY``.

The population is shaped like a European cancer-imaging federation:

- providers spread over EU countries; dataset sizes lognormal (a few large cohorts, many small
  ones); each dataset about one to three cancer types, weighted by European incidence (breast,
  prostate, colorectal and lung first), and collected over a period of a few years;
- per cancer type: the most specific diagnosis concepts with realistic shares, sex (breast ~99%
  female, prostate always male), age at diagnosis (a clipped normal law per type) and the
  imaging protocols that follow it (modalities with body parts, e.g. lung → CT of the chest,
  some PET/CT of the whole body);
- studies per subject negative-binomial (mean ``studies / subjects``, long tail up to 60),
  spread over up to five years after diagnosis, so ages at study grow along a follow-up and
  agree with the birth year; manufacturers from each site's scanner fleet, by market share;
- about 5% of subjects with a second primary cancer (consistent with their sex).

Everything is drawn from one ``random.Random(seed)``: the same :class:`Spec` writes the same rows
(database ids and timestamps aside). Nothing is queued in the outbox: callers rebuild the search
indices from PostgreSQL in bulk.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import math
import queue
import random
import re
import threading
import time
import uuid
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import psycopg
from psycopg.rows import tuple_row
from psycopg.types.json import Jsonb

from catalogue.ontology import get_vocabulary
from catalogue.testing.search_corpus import IMAGING_CATEGORY

#: EU member states, in the order providers are placed in them.
COUNTRIES: tuple[str, ...] = (
    "ES", "IT", "DE", "FR", "NL", "BE", "PT", "GR", "SE", "FI", "AT", "PL", "IE", "CZ", "DK",
    "HU", "RO", "SK", "SI", "HR", "BG", "LT", "LV", "EE", "LU", "MT", "CY",
)

#: imaging equipment manufacturers and their approximate market shares.
MANUFACTURERS: tuple[tuple[str, float], ...] = (
    ("Siemens Healthineers", 0.30),
    ("GE HealthCare", 0.27),
    ("Philips", 0.20),
    ("Canon Medical Systems", 0.12),
    ("Fujifilm", 0.06),
    ("United Imaging", 0.05),
)

FIRST_YEAR, LAST_YEAR = 2005, 2025  # study months fall in these years (inclusive)
MAX_STUDIES = 60  # studies of one subject
MAX_FOLLOW_UP = 5.0  # years after diagnosis
SECOND_CONDITION = 0.05  # share of subjects with a second primary cancer
SECOND_CONDITION_STUDIES = 0.3  # share of such a subject's studies about the second cancer
UNKNOWN_SEX, OTHER_SEX = 0.004, 0.0005  # for cancers that are not sex-specific
NO_MANUFACTURER = 0.04  # studies whose manufacturer is not recorded
STUDIES_DISPERSION = 0.5  # gamma shape of the studies-per-subject law (smaller: longer tail)
DATASET_SIZE_SIGMA = 1.4  # lognormal sigma of dataset sizes
CHUNK_SUBJECTS = 20_000  # subjects generated between two rounds of COPY

_MASK64 = (1 << 64) - 1
_NULL = "\\N"  # NULL in COPY text
_MIX = 0x9E3779B97F4A7C15  # odd: n ↦ n·_MIX mod 2⁶⁴ is a bijection, so keys never repeat


@dataclass(frozen=True)
class Spec:
    """What to generate. ``studies`` is a target: the total lands within a few percent.
    ``prefix`` starts organisation ids and dataset identifiers, so several populations (other
    prefixes or seeds) can live in one database."""

    providers: int = 30
    countries: int = 15
    datasets: int = 1000
    subjects: int = 1_000_000
    studies: int = 3_000_000
    seed: int = 42
    prefix: str = "synth"


@dataclass(frozen=True)
class GenerationReport:
    """Rows written, and the wall-clock seconds it took."""

    organisations: int
    datasets: int
    subjects: int
    studies: int
    conditions: int
    seconds: float


@dataclass(frozen=True)
class Protocol:
    """One kind of imaging study: its modalities and body parts, how often it is done for a
    cancer type (``weight``), its series count range and mean images per series."""

    modalities: tuple[str, ...]
    body_parts: tuple[str, ...]
    weight: float
    series: tuple[int, int]
    images_per_series: int


@dataclass(frozen=True)
class CancerType:
    """A cancer type: diagnosis concepts (with shares), relative incidence, share of women,
    age at diagnosis (mean, standard deviation) and its imaging protocols."""

    name: str
    incidence: float
    p_female: float
    age: tuple[float, float]
    concepts: tuple[tuple[str, float], ...]
    protocols: tuple[Protocol, ...]


def _p(modalities: str, body_parts: str, weight: float) -> Protocol:
    """A protocol from ``"PT CT"``-style strings; series and images follow the first modality."""
    mods = tuple(modalities.split())
    series, images = _SERIES[mods[0]]
    return Protocol(mods, tuple(body_parts.split()), weight, series, images)


# series per study (range) and images per series (mean) by leading modality
_SERIES: dict[str, tuple[tuple[int, int], int]] = {
    "CT": ((2, 8), 180), "MR": ((4, 14), 60), "PT": ((3, 8), 250), "MG": ((2, 6), 1),
    "US": ((1, 3), 15), "CR": ((1, 3), 1), "DX": ((1, 3), 1), "NM": ((1, 4), 20),
}

# Incidence: ECIS 2020 estimates for the EU-27, in thousands of new cases a year.
CANCER_TYPES: tuple[CancerType, ...] = (
    CancerType("breast cancer", 355, 0.99, (60, 12), (
        ("snomed:408643008", 0.75), ("snomed:254837009", 0.25)), (
        _p("MG", "BREAST", 0.50), _p("MR", "BREAST", 0.20), _p("US", "BREAST", 0.15),
        _p("CT", "CHEST", 0.07), _p("PT CT", "WHOLEBODY", 0.04), _p("NM", "WHOLEBODY", 0.04))),
    CancerType("prostate cancer", 336, 0.0, (68, 8), (("snomed:399068003", 1.0),), (
        _p("MR", "PROSTATE", 0.55), _p("MR", "PELVIS", 0.10), _p("PT CT", "WHOLEBODY", 0.12),
        _p("CT", "ABDOMEN PELVIS", 0.10), _p("NM", "WHOLEBODY", 0.08),
        _p("US", "PROSTATE", 0.05))),
    CancerType("lung cancer", 318, 0.42, (67, 9), (
        ("snomed:254626006", 0.40), ("snomed:254634000", 0.22), ("snomed:254632001", 0.13),
        ("snomed:254637007", 0.15), ("snomed:93880001", 0.10)), (
        _p("CT", "CHEST", 0.45), _p("CT", "LUNG", 0.25), _p("PT CT", "WHOLEBODY", 0.10),
        _p("MR", "BRAIN", 0.05), _p("DX", "CHEST", 0.08), _p("CR", "CHEST", 0.03),
        _p("NM", "WHOLEBODY", 0.04))),
    CancerType("colon cancer", 230, 0.45, (68, 11), (
        ("snomed:363406005", 0.9), ("snomed:35917007", 0.1)), (
        _p("CT", "ABDOMEN PELVIS", 0.45), _p("CT", "CHEST ABDOMEN PELVIS", 0.15),
        _p("CT", "COLON", 0.10), _p("MR", "LIVER", 0.10), _p("PT CT", "WHOLEBODY", 0.08),
        _p("US", "ABDOMEN", 0.07), _p("CT", "CHEST", 0.05))),
    CancerType("rectal cancer", 111, 0.38, (65, 11), (("snomed:363351006", 1.0),), (
        _p("MR", "RECTUM", 0.40), _p("CT", "ABDOMEN PELVIS", 0.30), _p("CT", "CHEST", 0.08),
        _p("MR", "LIVER", 0.07), _p("PT CT", "WHOLEBODY", 0.07), _p("US", "RECTUM", 0.08))),
    CancerType("melanoma", 106, 0.50, (58, 16), (("snomed:372244006", 1.0),), (
        _p("PT CT", "WHOLEBODY", 0.35), _p("CT", "CHEST ABDOMEN PELVIS", 0.30),
        _p("MR", "BRAIN", 0.20), _p("US", "NECK", 0.10), _p("CT", "HEAD", 0.05))),
    CancerType("lymphoma", 110, 0.45, (58, 17), (("snomed:118600007", 1.0),), (
        _p("PT CT", "WHOLEBODY", 0.50), _p("CT", "NECK CHEST ABDOMEN PELVIS", 0.30),
        _p("MR", "WHOLEBODY", 0.05), _p("US", "NECK", 0.05), _p("CT", "CHEST", 0.10))),
    CancerType("pancreatic cancer", 104, 0.48, (68, 10), (("snomed:363418001", 1.0),), (
        _p("CT", "PANCREAS", 0.45), _p("CT", "ABDOMEN", 0.20), _p("MR", "PANCREAS", 0.15),
        _p("PT CT", "WHOLEBODY", 0.05), _p("US", "ABDOMEN", 0.05), _p("CT", "CHEST", 0.10))),
    CancerType("kidney cancer", 99, 0.36, (63, 11), (("snomed:363518003", 1.0),), (
        _p("CT", "KIDNEY", 0.35), _p("CT", "ABDOMEN", 0.30), _p("MR", "KIDNEY", 0.12),
        _p("US", "KIDNEY", 0.10), _p("CT", "CHEST", 0.13))),
    CancerType("liver cancer", 55, 0.30, (66, 10), (
        ("snomed:109841003", 0.8), ("snomed:93870000", 0.2)), (
        _p("CT", "LIVER", 0.35), _p("MR", "LIVER", 0.30), _p("US", "LIVER", 0.15),
        _p("CT", "ABDOMEN", 0.10), _p("CT", "CHEST", 0.05), _p("PT CT", "WHOLEBODY", 0.05))),
    CancerType("brain cancer", 52, 0.43, (55, 15), (
        ("snomed:393563007", 0.55), ("snomed:428061005", 0.45)), (
        _p("MR", "BRAIN", 0.80), _p("CT", "HEAD", 0.12), _p("PT", "BRAIN", 0.03),
        _p("MR", "SPINE", 0.05))),
    CancerType("adrenal cancer", 3, 0.50, (50, 15), (("icd10:C74", 1.0),), (
        _p("CT", "ABDOMEN", 0.60), _p("MR", "ABDOMEN", 0.25), _p("PT CT", "WHOLEBODY", 0.15))),
)


def check_vocabularies(types: Sequence[CancerType] = CANCER_TYPES) -> None:
    """Raise ``ValueError`` if a concept, modality or body part is not a vocabulary id."""
    known = {name: {c.id for c in get_vocabulary(name).concepts()}
             for name in ("conditions", "modalities", "body_parts")}
    used = {
        "conditions": {c for t in types for c, _ in t.concepts},
        "modalities": {m for t in types for p in t.protocols for m in p.modalities},
        "body_parts": {b for t in types for p in t.protocols for b in p.body_parts},
    }
    for name, ids in used.items():
        unknown = sorted(ids - known[name])
        if unknown:
            raise ValueError(f"not in the {name} vocabulary: {', '.join(unknown)}")


# -- drawing ----------------------------------------------------------------------------------
class _Picker:
    """Weighted choice by bisection on cumulative weights (faster than ``random.choices`` for
    one item at a time)."""

    def __init__(self, items: Sequence[Any], weights: Sequence[float]) -> None:
        self.items = list(items)
        self.cumulative = list(itertools.accumulate(weights))
        self.total = self.cumulative[-1]

    def __call__(self, rnd: float) -> Any:
        i = bisect.bisect_right(self.cumulative, rnd * self.total)
        return self.items[min(i, len(self.items) - 1)]


def _poisson(rng: random.Random, lam: float) -> int:
    """Knuth's multiplication method (the mean drawn here is small)."""
    if lam > 500:  # exp(-lam) would underflow; a normal approximation is exact enough
        return max(0, round(rng.gauss(lam, math.sqrt(lam))))
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _sample(rng: random.Random, items: Sequence[Any], weights: Sequence[float], k: int
            ) -> list[Any]:
    """``k`` distinct items, weighted, without replacement."""
    pool, w, out = list(items), list(weights), []
    for _ in range(min(k, len(pool))):
        i = _Picker(range(len(pool)), w)(rng.random())
        out.append(pool.pop(i))
        w.pop(i)
    return out


def _key(n: int, salt: int) -> str:
    return f"{((n + salt) * _MIX) & _MASK64:016x}"


def _sizes(rng: random.Random, count: int, total: int) -> list[int]:
    """``count`` lognormal sizes summing to ``total`` (largest remainders get the rounding)."""
    if count == 0:
        return []
    weights = [rng.lognormvariate(0.0, DATASET_SIZE_SIGMA) for _ in range(count)]
    scale = total / sum(weights)
    exact = [w * scale for w in weights]
    sizes = [int(x) for x in exact]
    by_remainder = sorted(range(count), key=lambda i: exact[i] - sizes[i], reverse=True)
    for i in by_remainder[: total - sum(sizes)]:
        sizes[i] += 1
    return sizes


# -- the plan: organisations and datasets -----------------------------------------------------
@dataclass
class _Stats:
    """What one dataset's records hold, to describe the dataset."""

    subjects: int = 0
    studies: int = 0
    min_age: int | None = None
    max_age: int | None = None
    first_month: int | None = None
    last_month: int | None = None
    sexes: set[str] = field(default_factory=set)
    conditions: set[str] = field(default_factory=set)
    protocols: set[_Proto] = field(default_factory=set)
    manufacturers: set[str] = field(default_factory=set)  # _NULL: not recorded


@dataclass
class _Dataset:
    id: str
    organisation_id: str
    identifier: str
    country: str
    size: int
    types: list[CancerType]
    mixture: list[float]
    fleet: list[str]
    period: tuple[float, float]  # diagnoses fall in [start, end) (fractional years)
    delay: int  # days from the last study to the publication
    stats: _Stats = field(default_factory=_Stats)


def _organisations(spec: Spec, rng: random.Random) -> list[tuple[str, str, str]]:
    """(id, name, country) of the providers, ``spec.countries`` countries used in turn."""
    countries = list(COUNTRIES[: spec.countries])
    rng.shuffle(countries)
    kinds = ("University Hospital", "Cancer Centre", "Imaging Institute", "Medical Centre")
    return [(f"{spec.prefix}-p{n + 1:03d}",
             f"Synthetic {kinds[n % len(kinds)]} {n + 1} ({countries[n % len(countries)]})",
             countries[n % len(countries)]) for n in range(spec.providers)]


def _datasets(spec: Spec, rng: random.Random, organisations: list[tuple[str, str, str]]
              ) -> list[_Dataset]:
    sizes = _sizes(rng, spec.datasets, spec.subjects)
    brands, shares = zip(*MANUFACTURERS, strict=True)
    incidence = [t.incidence for t in CANCER_TYPES]
    # providers differ in size too: a few contribute many datasets
    provider = _Picker(organisations, [rng.lognormvariate(0.0, 0.8) for _ in organisations])
    out: list[_Dataset] = []
    for n, size in enumerate(sizes):
        org_id, _, country = organisations[n] if n < len(organisations) else provider(rng.random())
        k = 1 if (r := rng.random()) < 0.6 else 2 if r < 0.9 else 3
        types = _sample(rng, CANCER_TYPES, incidence, k)
        mixture = sorted((0.2 + rng.random() for _ in types), reverse=True)
        fleet = _sample(rng, brands, shares, 1 + int(rng.random() * 4))
        start = FIRST_YEAR + rng.random() * (LAST_YEAR - FIRST_YEAR - 2)
        end = min(LAST_YEAR + 1.0, start + 3 + rng.random() * 12)
        delay = 30 + int(rng.random() * 300)
        identifier = f"{spec.prefix}-ds-{n + 1:05d}"
        out.append(_Dataset(
            id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:catalogue:synthetic:{spec.seed}:"
                                                  f"{org_id}/{identifier}")),
            organisation_id=org_id, identifier=identifier, country=country, size=size,
            types=types, mixture=mixture, fleet=fleet, period=(start, end), delay=delay))
    return out


def _title(ds: _Dataset) -> str:
    names = [t.name for t in ds.types]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{joined[0].upper()}{joined[1:]} imaging cohort {ds.identifier.rsplit('-', 1)[-1]}"


def _published(last_study: date, delay: int) -> datetime:
    """When a dataset was published: ``delay`` days after its last study, by 31 January
    after the last study year at the latest."""
    latest = datetime(LAST_YEAR + 1, 1, 31, 12, tzinfo=UTC)
    when = datetime.combine(last_study, datetime.min.time(), UTC) + timedelta(days=delay)
    return min(when.replace(hour=9), latest)


def _dataset_row(ds: _Dataset) -> tuple[Any, ...]:
    """The declared description (what the dataset is about); figures follow the records."""
    concepts = sorted({c for t in ds.types for c, _ in t.concepts})
    modalities = sorted({m for t in ds.types for p in t.protocols for m in p.modalities})
    body_parts = sorted({b for t in ds.types for p in t.protocols for b in p.body_parts})
    description = (f"Synthetic imaging studies of {ds.size} subjects with "
                   f"{' or '.join(t.name for t in ds.types)}, for benchmarks.")
    issued = _published(date(LAST_YEAR, 12, 31), ds.delay)
    return (ds.id, ds.organisation_id, ds.identifier, "published", Jsonb({"en": _title(ds)}),
            Jsonb({"en": description}), [t.name for t in ds.types],
            ["http://publications.europa.eu/resource/authority/data-theme/HEAL"],
            [IMAGING_CATEGORY],
            concepts, modalities, body_parts, sorted(ds.fleet), [ds.country],
            "http://publications.europa.eu/resource/authority/access-right/RESTRICTED",
            issued, issued, issued)


_DATASET_COLUMNS = (
    "id", "organisation_id", "identifier", "status", "title", "description", "keywords",
    "themes", "health_categories", "conditions", "modalities", "body_parts", "manufacturers",
    "countries", "access_rights", "issued", "modified", "published_at")


# -- the records ------------------------------------------------------------------------------
def _months() -> list[str]:
    return [f"{y}-{m:02d}-01" for y in range(FIRST_YEAR, LAST_YEAR + 1) for m in range(1, 13)]


def _month(when: float) -> int:
    """Index in :func:`_months` of the month of a fractional year (its year is ``int(when)``,
    so ages computed from ``when`` agree with the study year)."""
    year = int(when)
    return (year - FIRST_YEAR) * 12 + min(11, int((when - year) * 12))


class _Proto:
    """A protocol ready for drawing (plain object: hashing the dataclass per study is slow)."""

    __slots__ = ("arrays", "images", "lo", "protocol", "span")

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        # COPY text of the two arrays: "{PT,CT}\t{WHOLEBODY}"
        self.arrays = ("{" + ",".join(protocol.modalities) + "}\t{"
                       + ",".join(protocol.body_parts) + "}")
        self.lo = protocol.series[0]
        self.span = protocol.series[1] - protocol.series[0] + 1
        self.images = protocol.images_per_series


class _Kind:
    """A cancer type ready for drawing."""

    def __init__(self, cancer: CancerType) -> None:
        self.cancer = cancer
        self.p_female = cancer.p_female
        self.mixed = 0.0 < cancer.p_female < 1.0
        self.age = cancer.age
        self.concept = _Picker([(*c.split(":", 1), c) for c, _ in cancer.concepts],
                               [w for _, w in cancer.concepts])
        self.protocol = _Picker([_Proto(p) for p in cancer.protocols],
                                [p.weight for p in cancer.protocols])
        self.second: dict[str, _Picker] = {}


def _kinds() -> dict[CancerType, _Kind]:
    kinds = {t: _Kind(t) for t in CANCER_TYPES}
    for first in kinds.values():
        others = [k for k in kinds.values() if k is not first]
        # second primary cancers, weighted by incidence among people of the subject's sex
        for sex in ("female", "male", "other", "unknown"):
            weights = [k.cancer.incidence * (k.p_female if sex == "female" else
                                             1 - k.p_female if sex == "male" else
                                             float(k.mixed)) for k in others]
            first.second[sex] = _Picker(others, weights)
    return kinds


class _Records:
    """Draws the subjects of the datasets, in order, as COPY text lines."""

    def __init__(self, spec: Spec, rng: random.Random) -> None:
        self.rng = rng
        self.study_mean = max(0.0, spec.studies / spec.subjects - 1) if spec.subjects else 0.0
        self.months = _months()
        self.salts = [rng.getrandbits(62) for _ in range(3)]
        self.subject_n = self.study_n = self.condition_n = 0
        self.kinds = _kinds()

    def _sex(self, kind: _Kind) -> str:
        r = self.rng.random()
        if kind.mixed:
            if r < UNKNOWN_SEX:
                return "unknown"
            if r < UNKNOWN_SEX + OTHER_SEX:
                return "other"
        return "female" if self.rng.random() < kind.p_female else "male"

    def subject(self, ds: _Dataset, sid: int, pick: _Picker, fleet: _Picker,
                out: tuple[list[str], list[str], list[str]]) -> None:
        """Append one subject of ``ds`` (id ``sid``) with its studies and conditions to
        ``out`` (subjects, studies, conditions)."""
        rng, rand, stats = self.rng, self.rng.random, ds.stats
        subjects, studies, conditions = out
        kind: _Kind = pick(rand())
        sex = self._sex(kind)
        mean, sd = kind.age
        age = min(95.0, max(18.0, rng.gauss(mean, sd)))
        # studies: one at diagnosis, the others over a follow-up that ends before the last
        # study year (diagnoses come earlier rather than follow-ups being squeezed)
        lam = (rng.gammavariate(STUDIES_DISPERSION, self.study_mean / STUDIES_DISPERSION)
               if self.study_mean > 0 else 0.0)
        count = min(1 + _poisson(rng, lam), MAX_STUDIES)
        start, end = ds.period
        horizon = 0.0 if count == 1 else min(0.5 + rand() * (MAX_FOLLOW_UP - 0.5),
                                             LAST_YEAR + 1 - start - 0.01)
        latest = min(end, LAST_YEAR + 1 - horizon) - 1e-6
        diagnosed = start + rand() * (latest - start)
        born = diagnosed - age
        self.subject_n += 1
        subjects.append(f"{sid}\t{ds.id}\t{_key(self.subject_n, self.salts[0])}\t{sex}\t"
                        f"{math.floor(born)}\n")
        stats.subjects += 1
        stats.sexes.add(sex)
        # diagnoses
        kinds = [kind]
        if rand() < SECOND_CONDITION:
            kinds.append(kind.second[sex](rand()))
        for k in kinds:
            system, code, concept = k.concept(rand())
            self.condition_n += 1
            conditions.append(f"{sid}\t{system}\t{code}\t{concept}\t"
                              f"{_key(self.condition_n, self.salts[2])}\n")
            stats.conditions.add(concept)
        # imaging
        times = [diagnosed, *sorted(diagnosed + rand() * horizon for _ in range(count - 1))]
        protocol = kind.protocol
        other = kinds[1].protocol if len(kinds) > 1 else None
        months, salt, used, n = self.months, self.salts[1], stats.protocols, self.study_n
        for when in times:
            p: _Proto = (other if other is not None and rand() < SECOND_CONDITION_STUDIES
                         else protocol)(rand())
            series = p.lo + int(rand() * p.span)
            images = max(series, int(series * p.images * (0.5 + rand())))
            maker = _NULL if rand() < NO_MANUFACTURER else fleet(rand())
            n += 1
            studies.append(f"{sid}\t{((n + salt) * _MIX) & _MASK64:016x}\t{p.arrays}\t"
                           f"{maker}\t{series}\t{images}\t{months[_month(when)]}\t"
                           f"{int(when - born)}\n")
            used.add(p)
            stats.manufacturers.add(maker)
        self.study_n = n
        stats.studies += count
        first_age, last_age = int(times[0] - born), int(times[-1] - born)
        stats.min_age = first_age if stats.min_age is None else min(stats.min_age, first_age)
        stats.max_age = last_age if stats.max_age is None else max(stats.max_age, last_age)
        first, last = _month(times[0]), _month(times[-1])
        stats.first_month = first if stats.first_month is None else min(stats.first_month, first)
        stats.last_month = last if stats.last_month is None else max(stats.last_month, last)

    def chunks(self, datasets: list[_Dataset], ids: Iterator[int]
               ) -> Iterator[tuple[list[str], list[str], list[str]]]:
        """(subjects, studies, conditions) COPY lines, about ``CHUNK_SUBJECTS`` subjects at a
        time; ``ids`` gives the subject ids."""
        out: tuple[list[str], list[str], list[str]] = ([], [], [])
        brands = dict(MANUFACTURERS)
        for ds in datasets:
            pick = _Picker([self.kinds[t] for t in ds.types], ds.mixture)
            fleet = _Picker(ds.fleet, [brands[b] for b in ds.fleet])
            for _ in range(ds.size):
                self.subject(ds, next(ids), pick, fleet, out)
                if len(out[0]) >= CHUNK_SUBJECTS:
                    yield out
                    out = ([], [], [])
        if out[0]:
            yield out


# -- writing ----------------------------------------------------------------------------------
_COPY_SUBJECTS = "COPY subjects (id, dataset_id, subject_key, sex, birth_year) FROM STDIN"
_COPY_STUDIES = ("COPY imaging_studies (subject_id, study_key, modalities, body_parts, "
                 "manufacturer, series_count, instance_count, study_month, age_at_study) "
                 "FROM STDIN")
_COPY_CONDITIONS = ("COPY conditions (subject_id, system, code, concept, condition_key) "
                    "FROM STDIN")


def _copy_text(conn: psycopg.Connection[Any], statement: str, lines: list[str],
               batch: int = 10_000) -> None:
    with conn.cursor() as cur, cur.copy(statement) as copy:
        for start in range(0, len(lines), batch):
            copy.write("".join(lines[start : start + batch]))


def _subject_ids(conn: psycopg.Connection[Any], count: int) -> Iterator[int]:
    """``count`` subject ids taken from the table's own sequence, so they never collide with
    rows written before, during or after, by anyone. The server returns them as runs of
    consecutive ids (one run unless other sessions took ids meanwhile)."""
    if count <= 0:
        return iter(())
    with conn.cursor(row_factory=tuple_row) as cur:
        runs = cur.execute(
            "WITH taken AS (SELECT nextval(pg_get_serial_sequence('subjects', 'id')) AS id "
            "FROM generate_series(1, %s)) "
            "SELECT min(id), max(id) FROM (SELECT id, id - row_number() OVER (ORDER BY id) "
            "AS run FROM taken) AS t GROUP BY run ORDER BY 1", (count,)).fetchall()
    return itertools.chain.from_iterable(range(lo, hi + 1) for lo, hi in runs)


_Chunk = tuple[list[str], list[str], list[str]]


def _in_background(chunks: Iterator[_Chunk]) -> Generator[_Chunk, None, None]:
    """``chunks``, drawn in a thread one chunk ahead: the next chunk is drawn while the server
    stores the current one (the GIL is free while psycopg waits for the server)."""
    ready: queue.Queue[_Chunk | BaseException | None] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: _Chunk | BaseException | None) -> None:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def draw() -> None:
        try:
            for chunk in chunks:
                put(chunk)
                if stop.is_set():
                    return
            put(None)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    thread = threading.Thread(target=draw, name="synthetic-records", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def _describe(conn: psycopg.Connection[Any], datasets: list[_Dataset]) -> None:
    """Figures of each dataset from what its records hold (a dataset without records keeps
    its declared description)."""
    months = _months()
    rows: list[dict[str, Any]] = []
    for ds in datasets:
        s = ds.stats
        if not s.subjects or s.first_month is None or s.last_month is None:
            continue
        first = date.fromisoformat(months[s.first_month])
        last = date.fromisoformat(months[s.last_month])
        end = (last.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        rows.append({
            "id": ds.id, "individuals": s.subjects, "studies": s.studies,
            "min_age": s.min_age, "max_age": s.max_age, "sexes": sorted(s.sexes),
            "conditions": sorted(s.conditions),
            "modalities": sorted({m for p in s.protocols for m in p.protocol.modalities}),
            "body_parts": sorted({b for p in s.protocols for b in p.protocol.body_parts}),
            "manufacturers": sorted(s.manufacturers - {_NULL}),
            "start": first, "end": end, "issued": _published(end, ds.delay)})
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE datasets SET number_of_individuals = %(individuals)s, "
            "number_of_studies = %(studies)s, min_age = %(min_age)s, max_age = %(max_age)s, "
            "sexes = %(sexes)s, conditions = %(conditions)s, modalities = %(modalities)s, "
            "body_parts = %(body_parts)s, manufacturers = %(manufacturers)s, "
            "temporal_start = %(start)s, temporal_end = %(end)s, issued = %(issued)s, "
            "modified = %(issued)s, published_at = %(issued)s WHERE id = %(id)s", rows)


def generate(conn: psycopg.Connection[Any], spec: Spec) -> GenerationReport:
    """Write the population of ``spec`` through ``conn``, in the caller's transaction (the
    caller commits). Raises ``ValueError`` if the spec is impossible or its organisations are
    already there (another ``prefix`` avoids that)."""
    started = time.perf_counter()
    if spec.countries > len(COUNTRIES) or spec.countries < 1:
        raise ValueError(f"countries must be between 1 and {len(COUNTRIES)}")
    if spec.providers < 1 or spec.datasets < 0 or spec.subjects < 0 or spec.studies < 0:
        raise ValueError("providers must be positive; datasets, subjects, studies not negative")
    if spec.subjects and not spec.datasets:
        raise ValueError("subjects need at least one dataset")
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,50}", spec.prefix):
        raise ValueError("prefix: lower-case letters, digits and hyphens, at most 51")
    check_vocabularies()
    rng = random.Random(spec.seed)  # noqa: S311 - reproducible synthetic data, not secrets
    organisations = _organisations(spec, rng)
    with conn.cursor(row_factory=tuple_row) as cur:
        taken = cur.execute("SELECT id FROM organisations WHERE id = ANY(%s) LIMIT 1",
                            ([o[0] for o in organisations],)).fetchone()
    if taken is not None:
        raise ValueError(f"organisation {taken[0]!r} exists: use another Spec.prefix")
    datasets = _datasets(spec, rng, organisations)

    with conn.cursor() as cur:
        with cur.copy("COPY organisations (id, name, country) FROM STDIN") as copy:
            for org in organisations:
                copy.write_row(org)
        with cur.copy(f"COPY datasets ({', '.join(_DATASET_COLUMNS)}) FROM STDIN") as copy:
            for ds in datasets:
                copy.write_row(_dataset_row(ds))

    records = _Records(spec, rng)
    ids = _subject_ids(conn, spec.subjects)
    with contextlib.closing(_in_background(records.chunks(datasets, ids))) as chunks:
        for subjects, studies, conditions in chunks:
            _copy_text(conn, _COPY_SUBJECTS, subjects)
            _copy_text(conn, _COPY_STUDIES, studies)
            _copy_text(conn, _COPY_CONDITIONS, conditions)
    _describe(conn, datasets)
    return GenerationReport(
        organisations=len(organisations), datasets=len(datasets), subjects=records.subject_n,
        studies=records.study_n, conditions=records.condition_n,
        seconds=round(time.perf_counter() - started, 3))
