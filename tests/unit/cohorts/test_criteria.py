"""Cohort questions: strict parsing (fail closed) and one canonical form per meaning."""

from __future__ import annotations

from typing import Any

import pytest

from catalogue.cohorts.criteria import Context, buckets, parse_question, plan
from catalogue.errors import ValidationError
from catalogue.ontology import get_vocabulary
from catalogue.search.mappings import load_definition
from catalogue.search.query import (
    AllOf,
    AnyOf,
    CellRun,
    CountCell,
    CountRequest,
    Nested,
    Not,
    Range,
    Terms,
)

CTX = Context(datasets=("d-1", "d-2"), providers=("prov-a", "prov-b"), countries=("ES", "IT"),
              definition=load_definition("subjects"))
LUNG = "snomed:93880001"


def canon(body: dict[str, Any]) -> str:
    return parse_question(body, CTX).digest()


def test_equivalent_questions_share_one_canonical_form() -> None:
    base = {"criteria": {"all_of": [
        {"condition": [LUNG]}, {"sex": ["female"]},
        {"study": {"modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}}]},
        "group_by": ["dataset", "sex"]}
    closure = [LUNG, *get_vocabulary("conditions").descendants(LUNG)]
    rewrites = [
        # member order, group order
        {"criteria": {"all_of": [
            {"study": {"age": {"lte": 70, "gte": 50}, "body_part": ["CHEST"], "modality": ["CT"]}},
            {"sex": ["female"]}, {"condition": [LUNG]}]}, "group_by": ["sex", "dataset"]},
        # duplicates, nested all_of, empty groups, a single-member any_of
        {"criteria": {"all_of": [{"all_of": [{"condition": [LUNG, LUNG]}, {"any_of": []}]},
                                 {"any_of": [{"sex": ["female", "female"]}]}, {"none_of": []},
                                 {"study": {"modality": ["CT", "CT"], "body_part": ["CHEST"],
                                            "age": {"gte": 50, "lte": 70}}}]},
         "group_by": ["dataset", "sex", "dataset"]},
        # explicit narrower concepts instead of the descendants flag
        {"criteria": {"all_of": [
            {"condition": {"concepts": closure, "descendants": False}}, {"sex": ["female"]},
            {"study": {"modality": ["CT"], "body_part": ["CHEST", "LUNG", "HEART", "BREAST"],
                       "age": {"gte": 50, "lte": 70}}}]}, "group_by": ["dataset", "sex"]},
        # an equivalent range (the same 5-year bands), a merged attribute
        {"criteria": {"all_of": [
            {"condition": [LUNG]}, {"sex": ["female", "male"]}, {"sex": ["female"]},
            {"study": {"modality": ["CT"], "body_part": ["CHEST"],
                       "age": {"gte": 52, "lte": 74}}}]},
         "group_by": ["dataset", "sex"]},
    ]
    expected = canon(base)
    for rewrite in rewrites:
        assert canon(rewrite) == expected, rewrite
    # ...while different questions differ
    assert canon({**base, "group_by": ["dataset"]}) != expected
    different = {"criteria": {"all_of": [
        {"condition": [LUNG]}, {"sex": ["female"]},
        {"study": {"modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 75}}}]},
        "group_by": ["dataset", "sex"]}
    assert canon(different) != expected
    # two study criteria are not one study with both
    split = {"criteria": {"all_of": [{"modality": ["CT"]}, {"body_part": ["CHEST"]}]}}
    joined = {"criteria": {"study": {"modality": ["CT"], "body_part": ["CHEST"]}}}
    assert canon(split) != canon(joined)
    # the descendants flag off is a different (narrower) question
    assert canon({"criteria": {"condition": {"concepts": [LUNG], "descendants": False}}}) != \
        canon({"criteria": {"condition": [LUNG]}})


def test_codes_resolve_to_concepts_and_country_case_is_ignored() -> None:
    concept = get_vocabulary("conditions").get("snomed:254626006")
    assert concept is not None
    assert canon({"criteria": {"condition": ["snomed:254626006"]}}) == canon(
        {"criteria": {"condition": [concept.iri]}})
    assert canon({"criteria": {"country": ["es"]}}) == canon({"criteria": {"country": ["ES"]}})


@pytest.mark.parametrize("body, message", [
    ([], "JSON object"),
    ({"criteria": {}, "extra": 1}, "unknown field 'extra'"),
    ({"criteria": {"sex": ["female"], "dataset": ["d-1"]}}, "exactly one"),
    ({"criteria": {"sex": ["woman"]}}, "unknown value 'woman'"),
    ({"criteria": {"dataset": ["d-9"]}}, "unknown value 'd-9'"),
    ({"criteria": {"country": ["XX"]}}, "unknown value 'XX'"),
    ({"criteria": {"condition": ["snomed:000"]}}, "not in the conditions vocabulary"),
    ({"criteria": {"modality": ["XRAY"]}}, "not in the modalities vocabulary"),
    ({"criteria": {"study": {"modality": ["CT"], "colour": ["red"]}}}, "unknown study field"),
    ({"criteria": {"study": {}}}, "at least one"),
    ({"criteria": {"age": {"gte": 70, "lte": 50}}}, "after"),
    ({"criteria": {"age": {"gte": -1}}}, "outside"),
    ({"criteria": {"age": {"gte": True}}}, "number of years"),
    ({"criteria": {"age": {"gte": float("nan")}}}, "number of years"),
    ({"criteria": {"age": {"over": 3}}}, "gte and/or lte"),
    ({"criteria": {"period": {"from": "2015-13"}}}, "YYYY"),
    ({"criteria": {"xor": []}}, "unknown criterion 'xor'"),
    ({"criteria": {"all_of": {"sex": ["male"]}}}, "list of criteria"),
    ({"criteria": {"sex": []}}, "non-empty list"),
    ({"criteria": {"sex": [1]}}, "non-empty list"),
    ({"criteria": {"condition": {"concepts": [LUNG], "descendants": "yes"}}}, "true or false"),
    ({"group_by": ["hospital"]}, "unknown dimension 'hospital'"),
    ({"group_by": ["dataset", "sex", "modality"]}, "at most two"),
    ({"group_by": "dataset; DROP TABLE subjects"}, "unknown dimension"),
    ({"criteria": {"manufacturer": ["x" * 300]}}, "non-empty list"),
])
def test_anything_unknown_is_refused(body: Any, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_question(body, CTX)
    assert message in caught.value.message


def test_limits_bound_the_work_a_question_can_ask_for() -> None:
    deep: dict[str, Any] = {"sex": ["male"]}
    for _ in range(8):
        deep = {"all_of": [deep]}
    with pytest.raises(ValidationError, match="nested more than"):
        parse_question({"criteria": deep}, CTX)
    with pytest.raises(ValidationError, match="more than 64 criteria"):
        parse_question({"criteria": {"any_of": [{"sex": ["male"]}] * 70}}, CTX)
    with pytest.raises(ValidationError, match="at most 500 values"):
        parse_question({"criteria": {"manufacturer": [f"m{i}" for i in range(501)]}}, CTX)


def test_plan_enumerates_buckets_from_vocabularies_and_metadata() -> None:
    question = parse_question({"criteria": {"all_of": [
        {"condition": [LUNG]}, {"none_of": [{"modality": ["MR"]}]},
        {"study": {"modality": ["CT"], "age": {"gte": 50, "lte": 59}}}]},
        "group_by": ["dataset", "age_band"]}, CTX)
    cells, engine = plan(question, CTX)
    assert len(cells) == len(engine) == 1 + len(CTX.datasets) * len(buckets("age_band", CTX))
    total = engine[0]
    assert isinstance(total, CountCell) and cells[0].label() == "total"
    # counted studies: the positive study criterion only (not the excluded MR)
    assert total.items == ((Terms("studies.modalities_path", ("CT",)),
                            Range("studies.age_band", gte=50, lte=55)),)
    by_label = {tuple(sorted(c.labels.items())): (c, e)
                for c, e in zip(cells[1:], engine[1:], strict=True)}
    inside_cell, inside = by_label[(("age_band", "55"), ("dataset", "d-2"))]
    assert isinstance(inside, CountCell)
    assert inside.filters == (Terms("dataset_id", ("d-2",)),)
    assert inside.any_of == (Nested("studies", (
        Terms("studies.modalities_path", ("CT",)), Range("studies.age_band", gte=55, lte=55))),)
    _outside_cell, outside = by_label[(("age_band", "70"), ("dataset", "d-1"))]
    assert isinstance(outside, CountCell)
    (conj,) = outside.items
    assert conj[1] == Range("studies.age_band", gte=70, lte=65)  # an empty range: no study
    assert inside_cell.label() == "dataset=d-2,age_band=55"


def test_a_question_grouped_by_one_subject_attribute_plans_one_run_of_cells() -> None:
    """A cell per dataset: the engine is asked for one ``CellRun``, the cells it stands for
    in the order of the released cells, each the total's count restricted to one dataset."""
    question = parse_question({"criteria": {"all_of": [
        {"condition": [LUNG]}, {"study": {"modality": ["CT"]}}]}, "group_by": ["dataset"]}, CTX)
    cells, engine = plan(question, CTX)
    total, run = engine
    assert isinstance(total, CountCell) and isinstance(run, CellRun)
    assert run.field == "dataset_id" and run.values == CTX.datasets
    assert [c.labels for c in cells[1:]] == [{"dataset": d} for d in CTX.datasets]
    assert run.base == CountCell((), (), total.items)
    assert run.cells() == [CountCell((Terms("dataset_id", (d,)),), (), total.items)
                           for d in CTX.datasets]
    assert CountRequest("studies", engine).size() == len(cells) == 1 + len(CTX.datasets)


def test_filters_translate_none_of_and_study_criteria() -> None:
    from catalogue.cohorts.criteria import to_filter

    question = parse_question({"criteria": {"all_of": [
        {"sex": ["male"]}, {"none_of": [{"body_part": ["CHEST"]}]}]}}, CTX)
    flt = to_filter(question.criteria, CTX)
    assert isinstance(flt, AllOf)
    negated = next(f for f in flt.filters if isinstance(f, Not))
    assert isinstance(negated.filter, AnyOf)
    (inner,) = negated.filter.filters
    # CHEST with its narrower body parts, matched through the path field by CHEST alone
    assert inner == Nested("studies", (Terms("studies.body_parts_path", ("CHEST",)),))


def test_a_run_is_one_group_where_its_cells_would_be_and_else_its_cells_one_by_one() -> None:
    """``group_cells``: a ``CellRun`` on a plain keyword field is one terms group, its values
    at the positions its cells would hold between the cells listed around it; a run on a
    field that cannot be grouped (nested), or repeating a value, is grouped as its cells
    listed one by one would be."""
    from catalogue.search.query import group_cells

    definition = CTX.definition
    items = ((Terms("studies.modalities_path", ("CT",)),),)
    total = CountCell(items=items)
    run = CellRun(CountCell((), (), items), "dataset_id", ("d-1", "d-2", "d-3"))
    after = CountCell((Terms("sex", ("female",)),), (), items)
    groups = group_cells((total, run, after), definition)
    assert [(g.field, g.values) for g in groups] == [
        (None, {"": 0}), ("dataset_id", {"d-1": 1, "d-2": 2, "d-3": 3}), ("sex", {"female": 4})]
    assert groups[1].base == run.base
    assert CountRequest("studies", (total, run, after)).size() == 5
    # the same cells listed one by one group the same way
    listed = group_cells((total, *run.cells(), after), definition)
    assert [(g.base, g.field, g.values) for g in listed] == [
        (g.base, g.field, g.values) for g in groups]
    # not groupable as a run: counted cell by cell, positions kept
    nested = CellRun(CountCell((), (), items), "studies.modalities_path", ("CT", "MR"))
    by_one = group_cells((total, nested, after), definition)
    assert sorted(p for g in by_one for p in g.values.values()) == [0, 1, 2, 3]
    assert [g.field for g in by_one] == [None, None, None, "sex"]
    repeated = CellRun(CountCell((), (), items), "dataset_id", ("d-1", "d-1"))
    twice = group_cells((repeated,), definition)
    assert [g.values for g in twice] == [{"d-1": 0}, {"d-1": 1}]
