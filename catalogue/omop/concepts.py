"""OMOP concepts → the catalogue's codes: condition codings, DICOM modalities, body parts, sex.

A concept id means nothing outside the vocabulary tables of one CDM, so every id is looked up in
that CDM's own ``concept`` table (:class:`ConceptCache`: batched, only the ids the rows carry,
each id once per run) and mapped from its vocabulary, code and name:

- **conditions**: the concept's vocabulary names the code system (:data:`VOCABULARY_SYSTEMS`:
  SNOMED → ``snomed``, ICD10/ICD10CM/ICD10GM → ``icd10``, ICDO3 → ``icdo3``); ICD-O-3 combination
  codes (``8140/3-C34.1``) give their morphology and topography codes. Other vocabularies give
  no code.
- **modalities** (:func:`modalities_of`), first rule that answers: the source's own table
  (``imaging_concepts`` setting); a DICOM modality code (the OHDSI imaging vocabulary's
  ``DICOM`` concepts carry ``CT``, ``MR``... as their code); a SNOMED CT imaging procedure
  (:data:`SNOMED_MODALITIES`); words of the concept name (:data:`MODALITY_WORDS`); a label of
  the modalities vocabulary.
- **body parts** (:func:`body_part_of`): the code in the body-parts vocabulary (``snomed:…``),
  else the name as a label, else ``system:code``. Procedure names give body parts by their words
  (:func:`body_parts_in_name`).
- **imaging procedures** (:func:`is_imaging_procedure`): a procedure concept is an imaging study
  when it gives a modality by the rules above and its name does not describe an intervention
  done *under* imaging guidance; a CDM whose ``concept_ancestor`` is filled also counts every
  descendant of SNOMED 363679005 "Imaging" (see :mod:`catalogue.omop.source`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache

from catalogue.ontology import fold, get_vocabulary

#: OMOP vocabulary ids → the catalogue's condition code systems
VOCABULARY_SYSTEMS: dict[str, str] = {
    "SNOMED": "snomed",
    "ICD10": "icd10",
    "ICD10CM": "icd10",
    "ICD10GM": "icd10",
    "ICD10CN": "icd10",
    "ICDO3": "icdo3",
}

#: the OMOP Gender concepts (vocabulary "Gender") → sex; 0 ("no matching concept") gives None
GENDERS: dict[int, str] = {8507: "male", 8532: "female", 8521: "other", 8570: "other",
                           8551: "unknown"}

#: SNOMED CT of the imaging-procedure hierarchy root ("Imaging (procedure)")
SNOMED_IMAGING = "363679005"

#: SNOMED CT imaging procedures → DICOM modality codes (CID 29)
SNOMED_MODALITIES: dict[str, tuple[str, ...]] = {
    "77477000": ("CT",),  # Computerized axial tomography
    "113091000": ("MR",),  # Magnetic resonance imaging
    "82918005": ("PT",),  # Positron emission tomography
    "71651007": ("MG",),  # Mammography
    "24623002": ("MG",),  # Screening mammography
    "241055006": ("MG",),  # Mammogram - symptomatic
    "16310003": ("US",),  # Diagnostic ultrasonography
    "40701008": ("US",),  # Echocardiography
    "168537006": ("DX",),  # Plain radiography
    "363680008": ("DX",),  # Radiographic imaging procedure
    "399208008": ("DX",),  # Plain chest X-ray
    "44491008": ("RF",),  # Fluoroscopy
    "312681000": ("BMD",),  # Bone density scan
}

#: words of a concept name → DICOM modality codes; every matching row counts (PET/CT → PT, CT)
MODALITY_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), code) for pattern, code in (
        (r"\bpositron\b|\bpet\b", "PT"),
        (r"computed tomograph|computeri[sz]ed (axial )?tomograph|\bct\b|\bcat scan", "CT"),
        (r"magnetic resonance|\bmri?\b", "MR"),
        (r"mammogra", "MG"),
        (r"ultraso|sonograph|echocardiogra|\bdoppler\b", "US"),
        (r"x-ray|\bxray|radiograph", "DX"),
        (r"fluorosc", "RF"),
        (r"angiogra", "XA"),
        (r"scintigra|nuclear medicine|radionuclide|\bspect\b|bone scan", "NM"),
        (r"bone densit|densitometr|\bdxa\b|\bdexa\b", "BMD"),
    )
)

#: names of procedures done under imaging guidance, not imaging studies themselves
NOT_IMAGING = re.compile(r"guidance|guided|\bbiopsy\b|\binjection\b")

#: words of a procedure name → body parts, beyond the body-parts vocabulary's own labels
BODY_PART_WORDS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), body_part) for pattern, body_part in (
        (r"echocardiogra|\bcardiac\b|\bcoronary\b", "HEART"),
        (r"mammogra", "BREAST"),
        (r"\bthora(x|cic)\b", "CHEST"),
        (r"\bcrani", "HEAD"),
    )
)


@dataclass(frozen=True)
class Concept:
    """One row of the CDM's ``concept`` table (what the mapping needs of it)."""

    id: int
    name: str
    domain: str
    vocabulary: str
    concept_class: str
    code: str


class ConceptCache:
    """Concepts by id, looked up in batches through ``lookup`` (a query on the CDM's concept
    table); ids the table does not hold are remembered as unknown."""

    def __init__(self, lookup: Callable[[list[int]], Iterable[Concept]]) -> None:
        self._lookup = lookup
        self._concepts: dict[int, Concept | None] = {}
        self.missing: set[int] = set()  # ids looked up and not found

    def load(self, ids: Iterable[int | None]) -> None:
        """Look up the ids not seen yet (0 and None mean "no concept" and are not looked up)."""
        wanted = sorted(i for i in set(ids) - self._concepts.keys() if i)
        for start in range(0, len(wanted), 10_000):
            chunk = wanted[start:start + 10_000]
            found = {c.id: c for c in self._lookup(chunk)}
            for concept_id in chunk:
                concept = self._concepts[concept_id] = found.get(concept_id)
                if concept is None:
                    self.missing.add(concept_id)

    def get(self, concept_id: int | None) -> Concept | None:
        if not concept_id:
            return None
        if concept_id not in self._concepts:
            self.load([concept_id])
        return self._concepts[concept_id]

    def unknown(self, concept_id: int | None) -> bool:
        """True when ``concept_id`` names a concept the table does not hold (0/None: no)."""
        if not concept_id:
            return False
        if concept_id not in self._concepts:
            self.load([concept_id])
        return concept_id in self.missing

    def __len__(self) -> int:
        return len(self._concepts)


def condition_codes(concept: Concept | None) -> list[tuple[str, str]]:
    """The (system, code) pairs a condition concept gives: none for other vocabularies."""
    if concept is None:
        return []
    system = VOCABULARY_SYSTEMS.get(concept.vocabulary.upper())
    code = concept.code.strip()
    if system is None or not code:
        return []
    if system == "icdo3" and "-" in code:  # morphology-topography combination
        return [(system, part) for part in code.split("-") if part]
    return [(system, code)]


def sex_of(gender_concept_id: int | None) -> str | None:
    if not gender_concept_id:
        return None
    return GENDERS.get(gender_concept_id, "unknown")


def _system_prefix(concept: Concept) -> str:
    return VOCABULARY_SYSTEMS.get(concept.vocabulary.upper(), concept.vocabulary.lower())


@cache
def _modality_by_code(code: str) -> str | None:
    vocabulary = get_vocabulary("modalities")
    found = vocabulary.resolve(f"dicom:{code}") if code.isalpha() else None
    return found.id if found else None


@cache
def _modality_by_label(name: str) -> str | None:
    found = get_vocabulary("modalities").resolve(name) if name else None
    return found.id if found else None


def modalities_in_name(name: str) -> list[str]:
    """DICOM modality codes the words of a concept name denote."""
    folded = fold(name)
    return [code for pattern, code in MODALITY_WORDS if pattern.search(folded)]


def modalities_of(concept: Concept, overrides: dict[int, tuple[str, ...]] | None = None
                  ) -> list[str]:
    """Modality ids (the modalities vocabulary: ``CT``, ``MR``...) of a modality or imaging
    procedure concept; empty when no rule answers."""
    if overrides and concept.id in overrides:
        return list(overrides[concept.id])
    code = concept.code.strip()
    by_code = _modality_by_code(code) if code else None
    if by_code:
        return [by_code]
    if concept.vocabulary.upper() == "SNOMED" and code in SNOMED_MODALITIES:
        return list(SNOMED_MODALITIES[code])
    by_name = modalities_in_name(concept.name)
    if by_name:
        return by_name
    by_label = _modality_by_label(concept.name.strip())
    return [by_label] if by_label else []


def unmapped_modality(concept: Concept) -> str:
    """The id a modality concept no rule maps is kept under (``system:code``)."""
    return f"{_system_prefix(concept)}:{concept.code.strip() or concept.id}"


def is_imaging_procedure(concept: Concept, overrides: dict[int, tuple[str, ...]] | None = None
                         ) -> bool:
    """True when a procedure concept is itself an imaging study (see the module docstring)."""
    if overrides and concept.id in overrides:
        return True
    if NOT_IMAGING.search(fold(concept.name)):
        return False
    return bool(modalities_of(concept))


@cache
def _body_part(system: str, code: str, name: str) -> str:
    vocabulary = get_vocabulary("body_parts")
    found = vocabulary.resolve(f"{system}:{code}") if code else None
    if found is None and name:
        found = vocabulary.resolve(name)
    return found.id if found else f"{system}:{code}"


def body_part_of(concept: Concept) -> str:
    """The body-parts vocabulary id of an anatomic-site concept (else ``system:code``)."""
    return _body_part(_system_prefix(concept), concept.code.strip(), concept.name.strip())


@cache
def _label_patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    vocabulary = get_vocabulary("body_parts")
    labels: dict[str, str] = {}
    for concept in vocabulary.concepts():  # OMOP concept names are English
        for label in [concept.labels.get("en", ""), *concept.alt_labels.get("en", ())]:
            labels.setdefault(fold(label), concept.id)
    longest_first = sorted(labels.items(), key=lambda item: -len(item[0]))
    return tuple((re.compile(rf"\b{re.escape(label)}\b"), concept_id)
                 for label, concept_id in longest_first if len(label) > 2)


@cache
def body_parts_in_name(name: str) -> tuple[str, ...]:
    """Body parts the words of a procedure name denote ("Plain chest X-ray" → CHEST)."""
    folded = fold(name)
    found: dict[str, None] = {}
    for pattern, body_part in (*_label_patterns(), *BODY_PART_WORDS):
        if pattern.search(folded):
            found[body_part] = None
    return tuple(found)
