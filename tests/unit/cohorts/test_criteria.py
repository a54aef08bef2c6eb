"""Cohort questions: strict parsing (fail closed) and one canonical form per meaning."""

from __future__ import annotations

from typing import Any

import pytest

from catalogue.cohorts.criteria import Context, buckets, parse_question, plan
from catalogue.errors import ValidationError
from catalogue.ontology import get_vocabulary
from catalogue.search.mappings import load_definition
from catalogue.search.query import AllOf, AnyOf, Nested, Not, Range, Terms

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
    cells = plan(question, CTX)
    assert len(cells) == 1 + len(CTX.datasets) * len(buckets("age_band", CTX))
    total = cells[0]
    # counted studies: the positive study criterion only (not the excluded MR)
    assert total.engine.items == ((Terms("studies.modalities_path", ("CT",)),
                                   Range("studies.age_band", gte=50, lte=55)),)
    by_label = {tuple(sorted(c.labels.items())): c for c in cells[1:]}
    inside = by_label[(("age_band", "55"), ("dataset", "d-2"))]
    assert inside.engine.filters == (Terms("dataset_id", ("d-2",)),)
    assert inside.engine.any_of == (Nested("studies", (
        Terms("studies.modalities_path", ("CT",)), Range("studies.age_band", gte=55, lte=55))),)
    outside = by_label[(("age_band", "70"), ("dataset", "d-1"))]
    (conj,) = outside.engine.items
    assert conj[1] == Range("studies.age_band", gte=70, lte=65)  # an empty range: no study
    assert inside.label() == "dataset=d-2,age_band=55" and total.label() == "total"


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
