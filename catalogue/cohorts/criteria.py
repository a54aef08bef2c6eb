"""Cohort questions: parsed strictly, put in one canonical form, planned as engine cells.

A question is a tree of criteria and up to two grouping dimensions::

    {"criteria": {"all_of": [
        {"condition": ["snomed:254626006"]},
        {"study": {"modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}}]},
     "group_by": ["dataset"]}

Nodes are ``all_of`` / ``any_of`` / ``none_of`` lists or one criterion:

- subject criteria: ``condition`` (vocabulary concepts; narrower concepts included unless
  ``{"concepts": [...], "descendants": false}``), ``sex``, ``dataset``, ``provider``, ``country``;
- study criteria, all met by ONE imaging study: ``{"study": {...}}`` with ``modality``,
  ``body_part`` (narrower concepts always included), ``manufacturer``, ``age`` (age at study,
  ``gte``/``lte`` years) and ``period`` (``from``/``to``, ``YYYY`` or ``YYYY-MM``); written at the
  top level (``{"modality": ["CT"]}``) a study criterion stands alone.

Anything else — an unknown field, operator, value or dimension — is refused (fail closed).

The canonical form removes surface differences, so that equivalent questions are one question
(same noise, no new budget): concept lists become the exact set of concepts they match
(explicit narrower concepts and the descendants flag meet), values are deduplicated and sorted,
ranges snap to the index's bins (5-year age bands, calendar years), nested groups of the same
kind are flattened, single-member groups unwrapped, empty groups dropped, single-valued subject
attributes merged (intersected under ``all_of``, united under ``any_of``), members sorted.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from catalogue.dcat.countries import iri_from_alpha2
from catalogue.errors import ValidationError
from catalogue.ontology import get_vocabulary
from catalogue.search.mappings import IndexDefinition
from catalogue.search.nested import snap
from catalogue.search.query import (
    AllOf,
    AnyOf,
    CellRun,
    CountCell,
    Filter,
    Nested,
    Not,
    Range,
    Terms,
)

MAX_DEPTH = 6
MAX_CRITERIA = 64
MAX_VALUES = 500
MAX_CELLS = 5_000
SEXES = ("female", "male", "other", "unknown")
SUBJECT_KINDS = ("condition", "sex", "dataset", "provider", "country")
STUDY_KEYS = ("modality", "body_part", "manufacturer", "age", "period")
#: single-valued subject attributes: ``a`` AND ``b`` is ``a ∩ b``, ``a`` OR ``b`` is ``a ∪ b``
SINGLE_VALUED = ("sex", "dataset", "provider", "country")
GROUP_DIMENSIONS = ("dataset", "provider", "country", "sex", "modality", "body_part", "age_band")
_FIELDS = {"sex": "sex", "dataset": "dataset_id", "provider": "organisation_id",
           "country": "country", "condition": "conditions"}
_STUDY_FIELDS = {"modality": "studies.modalities_path", "body_part": "studies.body_parts_path",
                 "manufacturer": "studies.manufacturer", "age": "studies.age_band",
                 "period": "studies.year"}
_VOCABULARIES = {"condition": "conditions", "modality": "modalities", "body_part": "body_parts"}
_MONTH = re.compile(r"^(\d{4})(?:-(\d{2}))?$")

Node = dict[str, Any]  # canonical nodes are plain JSON: {"all_of": [...]}, {"sex": [...]}...
TRUE: Node = {"all_of": []}


@dataclass(frozen=True)
class Context:
    """What criteria may name besides vocabularies: the catalogue's published datasets, its
    providers and the countries of its datasets (catalogue metadata, public)."""

    datasets: tuple[str, ...]
    providers: tuple[str, ...]
    countries: tuple[str, ...]
    definition: IndexDefinition
    unpublished: tuple[str, ...] = ()  # drafts and withdrawn datasets: never counted
    #: per-context memo (the cells of one subject dimension are the same for every question)
    memo: dict[Any, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class Question:
    criteria: Node
    group_by: tuple[str, ...] = ()

    def canonical(self) -> dict[str, Any]:
        return {"criteria": self.criteria, "group_by": list(self.group_by)}

    def digest(self) -> str:
        return digest(self.canonical())


def dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def digest(value: Any) -> str:
    return hashlib.sha256(dumps(value).encode()).hexdigest()


# -- parsing ----------------------------------------------------------------------------------
def parse_question(body: Any, ctx: Context) -> Question:
    """The canonical question of a request body, or ``ValidationError`` naming what and where."""
    if not isinstance(body, dict):
        raise ValidationError("the request body must be a JSON object")
    unknown = sorted(set(body) - {"criteria", "group_by"})
    if unknown:
        raise ValidationError(f"unknown field {unknown[0]!r}; use criteria and group_by")
    group_by = body.get("group_by", [])
    if isinstance(group_by, str):
        group_by = [group_by]
    if not isinstance(group_by, list) or not all(isinstance(g, str) for g in group_by):
        raise ValidationError("group_by: give a list of dimension names")
    for name in group_by:
        if name not in GROUP_DIMENSIONS:
            raise ValidationError(f"group_by: unknown dimension {name!r}; use one of "
                                  f"{', '.join(GROUP_DIMENSIONS)}")
    dims = sorted(set(group_by), key=GROUP_DIMENSIONS.index)
    if len(dims) > 2:
        raise ValidationError("group_by: at most two dimensions")
    counter = [0]
    criteria = canonical(_parse(body.get("criteria", TRUE), ctx, "criteria", 0, counter))
    question = Question(criteria, tuple(dims))
    cells = 1
    for dim in dims:
        cells *= len(buckets(dim, ctx))
    if cells > MAX_CELLS:
        raise ValidationError(f"group_by: {cells} cells; at most {MAX_CELLS}")
    return question


def _parse(raw: Any, ctx: Context, where: str, depth: int, counter: list[int]) -> Node:
    if depth > MAX_DEPTH:
        raise ValidationError(f"{where}: criteria nested more than {MAX_DEPTH} levels deep")
    counter[0] += 1
    if counter[0] > MAX_CRITERIA:
        raise ValidationError(f"{where}: more than {MAX_CRITERIA} criteria")
    if not isinstance(raw, dict) or len(raw) != 1:
        raise ValidationError(f"{where}: give an object with exactly one of all_of, any_of, "
                              f"none_of, study, {', '.join(SUBJECT_KINDS)}, "
                              f"{', '.join(STUDY_KEYS)}")
    ((key, value),) = raw.items()
    if key in ("all_of", "any_of", "none_of"):
        if not isinstance(value, list):
            raise ValidationError(f"{where}.{key}: give a list of criteria")
        return {key: [_parse(v, ctx, f"{where}.{key}[{i}]", depth + 1, counter)
                      for i, v in enumerate(value)]}
    if key == "study":
        if not isinstance(value, dict) or not value:
            raise ValidationError(f"{where}.study: give at least one of {', '.join(STUDY_KEYS)}")
        return {"study": _study(value, ctx, f"{where}.study")}
    if key in STUDY_KEYS:
        return {"study": _study({key: value}, ctx, where)}
    if key == "condition":
        return {"condition": _conditions(value, f"{where}.condition")}
    if key in SINGLE_VALUED:
        allowed = {"sex": SEXES, "dataset": ctx.datasets, "provider": ctx.providers,
                   "country": None}[key]
        values = _strings(value, f"{where}.{key}")
        if key == "country":
            values = [v.upper() for v in values]
            bad = [v for v in values if iri_from_alpha2(v) is None]
        else:
            bad = [v for v in values if v not in (allowed or ())]
        if bad:
            raise ValidationError(f"{where}.{key}: unknown value {bad[0]!r}")
        return {key: sorted(set(values))}
    raise ValidationError(f"{where}: unknown criterion {key!r}")


def _strings(value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if (not isinstance(value, list) or not value
            or not all(isinstance(v, str) and 0 < len(v) <= 200 for v in value)):
        raise ValidationError(f"{where}: give a non-empty list of values")
    if len(value) > MAX_VALUES:
        raise ValidationError(f"{where}: at most {MAX_VALUES} values")
    return value


def _concepts(vocabulary: str, values: list[str], descendants: bool, where: str) -> list[str]:
    """The exact set of concept ids the values match (with every narrower concept)."""
    vocab = get_vocabulary(vocabulary)
    out: set[str] = set()
    for value in values:
        concept = vocab.resolve(value)
        if concept is None:
            raise ValidationError(f"{where}: {value!r} is not in the {vocabulary} vocabulary")
        out.add(concept.id)
        if descendants:
            out.update(vocab.descendants(concept.id))
    return sorted(out)


def _conditions(value: Any, where: str) -> list[str]:
    descendants = True
    if isinstance(value, dict):
        unknown = sorted(set(value) - {"concepts", "descendants"})
        if unknown:
            raise ValidationError(f"{where}: unknown field {unknown[0]!r}; use concepts and "
                                  "descendants")
        descendants = value.get("descendants", True)
        if not isinstance(descendants, bool):
            raise ValidationError(f"{where}.descendants: give true or false")
        value = value.get("concepts")
    return _concepts("conditions", _strings(value, where), descendants, where)


def _study(raw: dict[str, Any], ctx: Context, where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in STUDY_KEYS:
            raise ValidationError(f"{where}: unknown study field {key!r}; use "
                                  f"{', '.join(STUDY_KEYS)}")
        if key in ("modality", "body_part"):
            out[key] = _concepts(_VOCABULARIES[key], _strings(value, f"{where}.{key}"), True,
                                 f"{where}.{key}")
        elif key == "manufacturer":
            out[key] = sorted(set(_strings(value, f"{where}.{key}")))
        elif key == "age":
            out[key] = _range(value, ctx, "studies.age_band", ("gte", "lte"), f"{where}.age",
                              _year_number)
        else:
            out[key] = _range(value, ctx, "studies.year", ("from", "to"), f"{where}.period",
                              _month_year)
    return out


def _year_number(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        raise ValidationError(f"{where}: give a number of years")
    if not 0 <= value <= 150:
        raise ValidationError(f"{where}: {value} is outside 0-150")
    return int(value)


def _month_year(value: Any, where: str) -> int:
    match = _MONTH.match(value) if isinstance(value, str) else None
    if match is None or (match.group(2) and not 1 <= int(match.group(2)) <= 12):
        raise ValidationError(f"{where}: give a year or a month as YYYY or YYYY-MM")
    return int(match.group(1))


def _range(value: Any, ctx: Context, field_name: str, names: tuple[str, str], where: str,
           number: Any) -> list[int]:
    """``[first bin, last bin]`` of a range (open ends: the index domain's ends)."""
    if not isinstance(value, dict) or not value or set(value) - set(names):
        raise ValidationError(f"{where}: give {names[0]} and/or {names[1]}")
    low = number(value[names[0]], f"{where}.{names[0]}") if names[0] in value else None
    high = number(value[names[1]], f"{where}.{names[1]}") if names[1] in value else None
    if low is not None and high is not None and low > high:
        raise ValidationError(f"{where}: {names[0]} is after {names[1]}")
    first, last = snap(ctx.definition.fields[field_name], low, high)
    return [first, last]


# -- canonical form ---------------------------------------------------------------------------
def canonical(node: Node) -> Node:
    ((key, value),) = node.items()
    if key == "all_of":
        return _all_of([canonical(c) for c in value])
    if key == "any_of":
        return _any_of([canonical(c) for c in value])
    if key == "none_of":
        inner = _any_of([canonical(c) for c in value])
        if inner == TRUE:
            return TRUE  # an empty group is no condition
        members = inner["any_of"] if "any_of" in inner else [inner]
        return {"none_of": members}
    return node


def _sorted(nodes: list[Node]) -> list[Node]:
    unique = {dumps(n): n for n in nodes}
    return [unique[k] for k in sorted(unique)]


def _all_of(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        flat.extend(child["all_of"] if "all_of" in child else [child])
    merged: dict[str, list[str]] = {}
    rest: list[Node] = []
    for child in flat:
        ((key, value),) = child.items()
        if key in SINGLE_VALUED:
            merged[key] = sorted(set(merged[key]) & set(value)) if key in merged else value
        else:
            rest.append(child)
    members = _sorted(rest + [{k: v} for k, v in merged.items()])
    return members[0] if len(members) == 1 else {"all_of": members}


def _any_of(children: list[Node]) -> Node:
    flat: list[Node] = []
    for child in children:
        if child == TRUE:
            continue  # an empty group is no condition, and drops out
        flat.extend(child["any_of"] if "any_of" in child else [child])
    if not flat:
        return TRUE
    merged: dict[str, set[str]] = {}
    rest: list[Node] = []
    for child in flat:
        ((key, value),) = child.items()
        if key in (*SINGLE_VALUED, "condition"):
            merged.setdefault(key, set()).update(value)
        else:
            rest.append(child)
    members = _sorted(rest + [{k: sorted(v)} for k, v in merged.items()])
    return members[0] if len(members) == 1 else {"any_of": members}


# -- planning ---------------------------------------------------------------------------------
def to_filter(node: Node, ctx: Context) -> Filter:
    ((key, value),) = node.items()
    if key == "all_of":
        return AllOf(tuple(to_filter(c, ctx) for c in value))
    if key == "any_of":
        return AnyOf(tuple(to_filter(c, ctx) for c in value))
    if key == "none_of":
        return Not(AnyOf(tuple(to_filter(c, ctx) for c in value)))
    if key == "study":
        return Nested("studies", study_filters(value))
    if key == "condition":
        return condition_filter(value)
    return Terms(_FIELDS[key], tuple(value))


def condition_filter(concepts: list[str]) -> Filter:
    """A condition criterion (its exact, expanded concept set) as an engine filter.

    A set closed under narrower concepts (the default: descendants included) is matched on the
    ancestor paths (``conditions_path``: every subject holds its codes and all their ancestors)
    by the few concepts that generate it: one posting list per generator, which an engine can
    skip through, instead of a union of every narrower concept's postings (about 10 ms of each
    count on a million subjects). Other sets are matched exactly on ``conditions``."""
    vocab = get_vocabulary("conditions")
    chosen = set(concepts)
    if all(chosen.issuperset(vocab.descendants(c)) for c in chosen):
        return Terms("conditions_path", _cover("conditions", sorted(chosen)))
    return Terms("conditions", tuple(concepts))


def _cover(vocabulary: str, concepts: list[str]) -> tuple[str, ...]:
    """The concepts of a descendant-closed set that have no ancestor in it: matching them or
    their narrower concepts (the ``*_path`` fields) is matching the set."""
    vocab = get_vocabulary(vocabulary)
    chosen = set(concepts)
    return tuple(c for c in concepts if not chosen & set(vocab.ancestors(c)))


def study_filters(study: dict[str, Any]) -> tuple[Filter, ...]:
    out: list[Filter] = []
    for key in STUDY_KEYS:
        if key not in study:
            continue
        value = study[key]
        if key in ("modality", "body_part"):
            out.append(Terms(_STUDY_FIELDS[key], _cover(_VOCABULARIES[key], value)))
        elif key == "manufacturer":
            out.append(Terms(_STUDY_FIELDS[key], tuple(value)))
        else:
            out.append(Range(_STUDY_FIELDS[key], gte=value[0], lte=value[1]))
    return tuple(out)


def positive_studies(node: Node) -> list[dict[str, Any]]:
    """The study criteria a subject's counted studies must meet (those not under none_of)."""
    ((key, value),) = node.items()
    if key in ("all_of", "any_of"):
        return [s for c in value for s in positive_studies(c)]
    if key == "study":
        return [value]
    return []


def buckets(dim: str, ctx: Context) -> tuple[str, ...]:
    """The values a dimension is grouped into: from vocabularies and catalogue metadata, never
    from the records, so that the cells themselves reveal nothing."""
    if dim == "dataset":
        return ctx.datasets
    if dim == "provider":
        return ctx.providers
    if dim == "country":
        return ctx.countries
    if dim == "sex":
        return SEXES
    if dim == "age_band":
        fdef = ctx.definition.fields["studies.age_band"]
        assert fdef.bin is not None and fdef.domain is not None
        return tuple(str(b) for b in range(fdef.domain[0], fdef.domain[1] + 1, fdef.bin))
    return tuple(c.id for c in get_vocabulary(_VOCABULARIES[dim]).concepts())


class Cell(NamedTuple):
    """One released cell: its labels (``{"dataset": id}``; empty for the total) in the
    question's ``group_by`` order (a named tuple: a grouped question has thousands)."""

    labels: dict[str, str]
    name: str = ""  # the label, when the plan computed it already

    def label(self) -> str:
        """``dataset=…,sex=…`` (values come from enumerated buckets), or ``total``."""
        return self.name or ",".join(f"{d}={v}" for d, v in self.labels.items()) or "total"


class Plan(NamedTuple):
    """The cells a question releases (the total first) and what the engine counts for them,
    in the same order: a ``CountCell`` per cell, or a ``CellRun`` standing for several."""

    cells: list[Cell]
    engine: tuple[CountCell | CellRun, ...]


def _subject_cells(dim: str, ctx: Context) -> tuple[list[Cell], str, tuple[str, ...]]:
    """The cells of every bucket of one subject dimension, its field and its buckets, made
    once per context: only the question's study conjunctions differ between questions."""
    key = ("subject-cells", dim)
    made = ctx.memo.get(key)
    if made is None:
        values = buckets(dim, ctx)
        made = ctx.memo[key] = ([Cell({dim: v}, f"{dim}={v}") for v in values], _FIELDS[dim],
                                values)
    return made


def _restrict(study: dict[str, Any], dim: str, value: str, ctx: Context) -> dict[str, Any]:
    """``study`` criteria that also require the study to be in group ``dim = value``."""
    out = dict(study)
    if dim == "age_band":
        band = int(value)
        step = ctx.definition.fields["studies.age_band"].bin or 1
        if "age" in out:
            low, high = out["age"]
            out["age"] = [band, band] if low <= band <= high else [band, band - step]
        else:
            out["age"] = [band, band]
        return out
    vocabulary = _VOCABULARIES[dim]
    vocab = get_vocabulary(vocabulary)
    group = {value, *vocab.descendants(value)}
    if dim not in out:
        out[dim] = sorted(group)
    else:
        # a study in group g that meets the criterion: coded with a concept in both sets
        out[dim] = sorted(set(out[dim]) & group)
    return out


def plan(question: Question, ctx: Context) -> Plan:
    """The total (first) and every group cell, with what ``SearchBackend.count_cells`` counts
    for them.

    Grouped by one subject attribute (a cell per dataset, say), the group cells are one
    ``CellRun``. Otherwise subject attributes are the cells' last filters, the one with the
    most buckets last, so that engines answer each run of cells with one terms aggregation."""
    criteria = question.criteria
    studies = positive_studies(criteria)
    items = tuple(study_filters(s) for s in studies)
    cells = [Cell({})]
    engine: list[CountCell | CellRun] = [CountCell(items=items)]
    if not question.group_by:
        return Plan(cells, tuple(engine))
    dims = sorted(question.group_by, key=lambda d: (d in SINGLE_VALUED, len(buckets(d, ctx))))
    if len(dims) == 1 and dims[0] in SINGLE_VALUED:  # the common case, without the general walk
        labelled, field, values = _subject_cells(dims[0], ctx)
        return Plan([*cells, *labelled],
                    (*engine, CellRun(CountCell((), (), items), field, values)))
    terms = {d: {v: Terms(_FIELDS[d], (v,)) for v in buckets(d, ctx)}
             for d in dims if d in SINGLE_VALUED}
    combos: list[dict[str, str]] = [{}]
    for dim in dims:
        combos = [{**c, dim: v} for c in combos for v in buckets(dim, ctx)]
    restricted_cache: dict[tuple[tuple[str, str], ...], Any] = {}
    for labels in combos:
        subject = {d: v for d, v in labels.items() if d in SINGLE_VALUED}
        study_dims = {d: v for d, v in labels.items() if d not in SINGLE_VALUED}
        filters = tuple(terms[d][v] for d, v in subject.items())
        cells.append(Cell({d: labels[d] for d in question.group_by}))
        if not study_dims:
            engine.append(CountCell(filters=filters, items=items))
            continue
        study_key = tuple(study_dims.items())
        restricted_engine = restricted_cache.get(study_key)
        if restricted_engine is None:
            restricted = []
            for study in studies or [{}]:
                for dim, value in study_dims.items():
                    study = _restrict(study, dim, value, ctx)
                restricted.append(study)
            conj = tuple(study_filters(s) for s in restricted)
            restricted_engine = restricted_cache[study_key] = (
                tuple(Nested("studies", c) for c in conj), conj)
        engine.append(CountCell(filters=filters, any_of=restricted_engine[0],
                                items=restricted_engine[1]))
    return Plan(cells, tuple(engine))
