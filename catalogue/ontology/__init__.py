"""Controlled vocabularies: cancer conditions, imaging modalities, body parts (SKOS).

Loaded once per process from ``ontologies/vocabularies/*.ttl`` into plain dicts. Every concept
has a catalogue id (``skos:notation``: ``snomed:254626006``, ``CT``, ``CHEST``), labels per
language, codes (``system:code``) and matching IRIs. :meth:`Vocabulary.resolve` maps what
providers write (ids, codes in several spellings, IRIs, labels in any language) to a concept;
search indexes the ids with every ancestor, so filters and facets follow the hierarchy.
"""

from __future__ import annotations

import functools
import re
import threading
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rdflib import Graph, Literal, URIRef
from rdflib.namespace import DCTERMS, RDF, SKOS

from catalogue.errors import NotFound
from catalogue.resources import resource_dir

VOCABULARIES: tuple[str, ...] = ("conditions", "modalities", "body_parts")

_SYSTEMS = {  # written system names → catalogue system prefix
    "snomed": "snomed", "snomedct": "snomed", "sct": "snomed", "sctid": "snomed",
    "icd10": "icd10", "icd": "icd10", "icd10cm": "icd10",
    "icdo3": "icdo3", "icdo": "icdo3",
    "dicom": "dicom", "dcm": "dicom", "eucaim": "eucaim",
}
_IRI_PREFIXES = {  # IRI prefixes → catalogue system prefix
    "http://snomed.info/id/": "snomed",
    "http://snomed.info/sct/": "snomed",
    "http://purl.bioontology.org/ontology/SNOMEDCT/": "snomed",
    "http://id.who.int/icd/release/10/": "icd10",
    "http://purl.bioontology.org/ontology/ICD10/": "icd10",
    "http://dicom.nema.org/resources/ontology/DCM/": "dicom",
    "https://cancerimage.eu/ontology/EUCAIM#": "eucaim",
}
_WRITTEN = re.compile(r"^\s*([A-Za-z][A-Za-z0-9 \-]*?)\s*[:\s]\s*(\S+)\s*$")
_ICD10 = re.compile(r"^[A-Z]\d{2}(\.\d{1,2})?$")


def fold(text: str) -> str:
    """Case- and accent-insensitive form of a label."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[^\w]+", fold(text)) if w]


@dataclass(frozen=True)
class Concept:
    id: str
    vocabulary: str
    iri: str
    labels: Mapping[str, str]
    alt_labels: Mapping[str, tuple[str, ...]]
    parents: tuple[str, ...]
    codes: tuple[str, ...]
    match_iris: tuple[str, ...]


class Vocabulary:
    def __init__(self, name: str, title: str, concepts: list[Concept]) -> None:
        self.name = name
        self.title = title
        self._concepts = {c.id: c for c in concepts}
        self._children: dict[str, list[str]] = {c.id: [] for c in concepts}
        for c in concepts:
            for parent in c.parents:
                self._children.setdefault(parent, []).append(c.id)
        self._lookup: dict[str, str] = {}
        for c in concepts:  # labels first, so that codes and ids win on a clash
            for label in [*c.labels.values(), *(a for alts in c.alt_labels.values()
                                                 for a in alts)]:
                self._lookup.setdefault("label:" + fold(label), c.id)
        for c in concepts:
            self._lookup["id:" + fold(c.id)] = c.id
            for code in c.codes:
                self._lookup["code:" + fold(code)] = c.id
            for iri in (c.iri, *c.match_iris):
                self._lookup["iri:" + _iri_key(iri)] = c.id
        self._ancestors: dict[str, list[str]] = {}
        self._resolved: dict[str, str | None] = {}
        self._lock = threading.Lock()

    # -- lookups ------------------------------------------------------------------------------
    def get(self, concept_id: str) -> Concept | None:
        return self._concepts.get(concept_id)

    def concepts(self) -> list[Concept]:
        return list(self._concepts.values())

    def resolve(self, value: str) -> Concept | None:
        """The concept ``value`` denotes (id, code, IRI or label), or None."""
        key = value.strip()
        if key in self._resolved:
            found = self._resolved[key]
        else:
            found = self._resolve(key)
            with self._lock:
                if len(self._resolved) > 100_000:
                    self._resolved.clear()
                self._resolved[key] = found
        return self._concepts[found] if found else None

    def _resolve(self, value: str) -> str | None:
        if not value:
            return None
        lookup = self._lookup
        for key in ("id:" + fold(value), "code:" + fold(value)):
            if key in lookup:
                return lookup[key]
        if "://" in value:
            found = lookup.get("iri:" + _iri_key(value))
            if found:
                return found
            for prefix, system in _IRI_PREFIXES.items():
                if _iri_key(value).startswith(_iri_key(prefix)):
                    return self._code(system, value[len(prefix):].strip("/"))
            return None
        match = _WRITTEN.match(value)
        if match:
            system = re.sub(r"[^a-z0-9]", "", match.group(1).lower())
            if system in _SYSTEMS:
                return self._code(_SYSTEMS[system], match.group(2))
        if value.isdigit():
            return self._code("snomed", value)
        if self.name == "conditions" and _ICD10.match(value.upper()):
            return self._code("icd10", value.upper())
        return lookup.get("label:" + fold(value))

    def _code(self, system: str, code: str) -> str | None:
        found = self._lookup.get("code:" + fold(f"{system}:{code}"))
        if found is None and system == "icd10" and "." in code:
            found = self._lookup.get("code:" + fold(f"icd10:{code.split('.')[0]}"))
        if found is None and system == "dicom":
            found = self._lookup.get("id:" + fold(code))
        return found

    def ancestors(self, concept_id: str) -> list[str]:
        """Every broader concept, nearest first, without duplicates."""
        cached = self._ancestors.get(concept_id)
        if cached is not None:
            return cached
        out: list[str] = []
        frontier = list(self._concepts[concept_id].parents) if concept_id in self._concepts \
            else []
        while frontier:
            nxt: list[str] = []
            for parent in frontier:
                if parent not in out and parent != concept_id:
                    out.append(parent)
                    concept = self._concepts.get(parent)
                    nxt.extend(concept.parents if concept else ())
            frontier = nxt
        self._ancestors[concept_id] = out
        return out

    def descendants(self, concept_id: str) -> list[str]:
        out: list[str] = []
        pending = list(self._children.get(concept_id, []))
        while pending:
            child = pending.pop(0)
            if child not in out:
                out.append(child)
                pending.extend(self._children.get(child, []))
        return out

    def children(self, concept_id: str) -> list[str]:
        return list(self._children.get(concept_id, []))

    def roots(self) -> list[str]:
        return [c.id for c in self._concepts.values() if not c.parents]

    def label(self, concept_id: str, lang: str = "en") -> str:
        concept = self._concepts.get(concept_id)
        if concept is None:
            return concept_id
        return concept.labels.get(lang) or concept.labels.get("en") or concept_id

    def search_terms(self, concept_id: str) -> list[str]:
        concept = self._concepts.get(concept_id)
        if concept is None:
            return []
        terms = [*concept.labels.values(), *(a for alts in concept.alt_labels.values()
                                             for a in alts), *concept.codes]
        return list(dict.fromkeys(terms))

    def tree(self, lang: str = "en") -> list[dict[str, Any]]:
        def node(cid: str, path: tuple[str, ...]) -> dict[str, Any]:
            kids = [k for k in self._children.get(cid, []) if k not in path]
            return {"id": cid, "label": self.label(cid, lang),
                    "children": [node(k, (*path, cid)) for k in kids]}

        return [node(r, ()) for r in self.roots()]

    def suggest(self, q: str, limit: int = 10, lang: str | None = None) -> list[dict[str, Any]]:
        """Autocomplete: every word of ``q`` starts a word of one label, or a code starts with
        ``q``. Preferred labels in ``lang`` rank first, then other labels, then shorter ones."""
        wanted = _words(q)
        folded_q = fold(q)
        if not wanted:
            return []
        ranked: list[tuple[tuple[int, int, int, str], dict[str, Any]]] = []
        for concept in self._concepts.values():
            best: tuple[tuple[int, int, int, str], str] | None = None
            wanted_lang = lang or "en"  # preferred, then alternative, labels in that language
            candidates = [(0 if tag == wanted_lang else 2, t) for tag, t in
                          concept.labels.items()]
            candidates += [(1 if tag == wanted_lang else 3, t)
                           for tag, alts in concept.alt_labels.items() for t in alts]
            for rank, text in candidates:
                words = _words(text)
                if all(any(w.startswith(x) for w in words) for x in wanted):
                    # labels that start with the query first ("lung cancer" before
                    # "adenocarcinoma of lung"), then preferred labels, then shorter ones
                    key = (0 if words[0].startswith(wanted[0]) else 1, rank, len(text), text)
                    if best is None or key < best[0]:
                        best = (key, text)
            for code in (concept.id, *concept.codes):
                value = code.split(":", 1)[-1]
                if fold(value).startswith(folded_q) or fold(code).startswith(folded_q):
                    key = (2, 4, len(code), code)
                    if best is None or key < best[0]:
                        best = (key, code)
            if best is not None:
                ranked.append((best[0], {"id": concept.id,
                                         "label": self.label(concept.id, lang or "en"),
                                         "matched": best[1], "vocabulary": self.name}))
        ranked.sort(key=lambda item: (item[0], item[1]["id"]))
        return [item for _, item in ranked[:limit]]


def _iri_key(iri: str) -> str:
    return iri.strip().rstrip("/").replace("https://", "http://", 1).casefold()


def _load(name: str) -> Vocabulary:
    path = resource_dir("ontologies") / "vocabularies" / f"{name}.ttl"
    graph = Graph().parse(path, format="turtle")
    ids = {s: str(o) for s, o in graph.subject_objects(SKOS.notation)}
    title = next((str(o) for s in graph.subjects(RDF.type, SKOS.ConceptScheme)
                  for o in graph.objects(s, DCTERMS.title)), name)
    concepts = []
    for subject in sorted(graph.subjects(RDF.type, SKOS.Concept), key=str):
        labels: dict[str, str] = {}
        for label in graph.objects(subject, SKOS.prefLabel):
            if isinstance(label, Literal):
                labels[label.language or "en"] = str(label)
        alts: dict[str, list[str]] = {}
        for label in graph.objects(subject, SKOS.altLabel):
            if isinstance(label, Literal):
                alts.setdefault(label.language or "en", []).append(str(label))
        matches = [str(o) for p in (SKOS.exactMatch, SKOS.closeMatch)
                   for o in graph.objects(subject, p) if isinstance(o, URIRef)]
        concepts.append(Concept(
            id=ids[subject], vocabulary=name, iri=str(subject), labels=labels,
            alt_labels={k: tuple(sorted(v)) for k, v in alts.items()},
            parents=tuple(sorted(ids[p] for p in graph.objects(subject, SKOS.broader)
                                 if p in ids)),
            codes=tuple(sorted(str(c) for c in graph.objects(subject, DCTERMS.identifier))),
            match_iris=tuple(sorted(matches)),
        ))
    return Vocabulary(name, title, concepts)


@functools.cache
def get_vocabulary(name: str) -> Vocabulary:
    if name not in VOCABULARIES:
        raise NotFound(f"no vocabulary {name!r}; use one of {', '.join(VOCABULARIES)}")
    return _load(name)


def normalise(name: str, values: Iterable[str]) -> tuple[list[str], list[str]]:
    """(concept ids of ``values`` in first-seen order without duplicates, unresolved values)."""
    vocab = get_vocabulary(name)
    ids: list[str] = []
    unknown: list[str] = []
    for value in values:
        concept = vocab.resolve(value)
        if concept is not None:
            if concept.id not in ids:
                ids.append(concept.id)
        elif value not in unknown:
            unknown.append(value)
    return ids, unknown
