"""Cohort counts with privacy switched off (the test-only ``exact`` policy) equal SQL ground
truth computed independently over PostgreSQL, on tantivy and on OpenSearch (conformance)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest

from catalogue.config import Config
from catalogue.model.dataset import DatasetStatus
from catalogue.model.identity import SYSTEM, Identity, Organisation, Role, User
from catalogue.runtime import Runtime
from tests.integration.cohorts import (
    BREAST,
    LUNG,
    PROSTATE,
    closure,
    sql_counts,
    stage,
)


def researcher(rt: Runtime, username: str = "rita", organisation: str | None = None) -> Identity:
    user = rt.identities.create_user(
        SYSTEM, User(id="", username=username, role=Role.RESEARCHER,
                     organisation_id=organisation))
    return Identity(user_id=user.id, username=username, role=Role.RESEARCHER,
                    organisation_id=organisation)


@pytest.fixture(params=["tantivy", "opensearch"])
def exact_rt(request: pytest.FixtureRequest) -> Iterator[Runtime]:
    config: Config = request.getfixturevalue(
        "config" if request.param == "tantivy" else "opensearch_config")
    rt = Runtime(config).start()
    assert rt.search is not None and rt.search.name == request.param
    rt.cohorts.policy = dataclasses.replace(rt.cohorts.policy, exact=True, budget=1e9,
                                            organisation_budget=1e9)
    yield rt
    rt.close()


def values(reply: dict[str, Any], *dims: str) -> dict[Any, tuple[int, int]]:
    out = {}
    for group in reply["groups"]:
        key = group[dims[0]] if len(dims) == 1 else tuple(group[d] for d in dims)
        out[key] = (group["subjects"]["value"], group["studies"]["value"])
    return out


def nonzero(cells: dict[Any, tuple[int, int]]) -> dict[Any, tuple[int, int]]:
    return {k: v for k, v in cells.items() if v != (0, 0)}


CT_CHEST_50_70 = ("'CT' = ANY(st.modalities) AND st.body_parts && %(chest)s "
                  "AND st.age_at_study BETWEEN 50 AND 74")  # 50-70 snaps to the bands 50..70


def has_study(condition: str) -> str:
    return f"EXISTS (SELECT 1 FROM imaging_studies st WHERE st.subject_id = s.id AND {condition})"


def has_condition(param: str) -> str:
    return (f"EXISTS (SELECT 1 FROM conditions c WHERE c.subject_id = s.id "
            f"AND c.concept = ANY(%({param})s))")


def test_exact_counts_equal_sql_ground_truth(exact_rt: Runtime) -> None:
    rt = exact_rt
    staged = stage(rt)
    who = researcher(rt)
    params = {"lung": closure("conditions", LUNG), "chest": closure("body_parts", "CHEST"),
              "breast": closure("conditions", BREAST), "prostate": [PROSTATE]}

    # 1. the issue's question: lung cancer (narrower diagnoses included), a chest CT at 50-70
    reply = rt.cohorts.count(who, {"criteria": {"all_of": [
        {"condition": [LUNG]},
        {"study": {"modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}}]},
        "group_by": ["dataset"]})
    truth = sql_counts(rt, f"{has_condition('lung')} AND {has_study(CT_CHEST_50_70)}",
                       CT_CHEST_50_70, params, group="s.dataset_id::text")
    assert nonzero(values(reply, "dataset")) == truth
    assert len(reply["groups"]) == len(staged.datasets)  # every published dataset is a cell
    total = sql_counts(rt, f"{has_condition('lung')} AND {has_study(CT_CHEST_50_70)}",
                       CT_CHEST_50_70, params)[None]
    assert (reply["total"]["subjects"]["value"], reply["total"]["studies"]["value"]) == total
    assert total[0] > 20  # a population worth counting, and the cap matters below

    # 2. none_of: women without any MR, per provider (every study of theirs counted)
    reply = rt.cohorts.count(who, {"criteria": {"all_of": [
        {"sex": ["female"]}, {"none_of": [{"modality": ["MR"]}]}]}, "group_by": ["provider"]})
    truth = sql_counts(rt, "s.sex = 'female' AND NOT " + has_study("'MR' = ANY(st.modalities)"),
                       "TRUE", params, group="d.organisation_id")
    assert nonzero(values(reply, "provider")) == truth

    # 3. any_of of two diagnoses, grouped by dataset and sex (two dimensions)
    reply = rt.cohorts.count(who, {"criteria": {"any_of": [
        {"condition": [BREAST]}, {"condition": [PROSTATE]}]}, "group_by": ["dataset", "sex"]})
    truth = sql_counts(rt, f"{has_condition('breast')} OR {has_condition('prostate')}", "TRUE",
                       params, group="s.dataset_id::text || '/' || s.sex")
    got = {f"{d}/{s}": v for (d, s), v in nonzero(values(reply, "dataset", "sex")).items()}
    assert got == truth and len(reply["groups"]) == len(staged.datasets) * 4

    # 4. a study dimension: chest studies per modality (PET/CT studies count in both cells)
    reply = rt.cohorts.count(who, {"criteria": {"study": {"body_part": ["CHEST"]}},
                                   "group_by": ["modality"]})
    cells = values(reply, "modality")
    for modality in ("CT", "PT", "MR", "MG"):
        study = "st.body_parts && %(chest)s AND %(m)s = ANY(st.modalities)"
        truth = sql_counts(rt, has_study(study), study, {**params, "m": modality})
        assert cells[modality] == truth.get(None, (0, 0)), modality

    # 5. age bands of CT studies
    reply = rt.cohorts.count(who, {"criteria": {"modality": ["CT"]}, "group_by": ["age_band"]})
    cells = values(reply, "age_band")
    for band in (50, 60, 65, 80):
        study = f"'CT' = ANY(st.modalities) AND st.age_at_study BETWEEN {band} AND {band + 4}"
        truth = sql_counts(rt, has_study(study), study, params)
        assert cells[str(band)] == truth.get(None, (0, 0)), band

    # 6. the subject with 60 chest CTs contributes 20 studies at most (the cap)
    lung_ct = staged.datasets[0]
    reply = rt.cohorts.count(who, {"criteria": {"all_of": [
        {"dataset": [lung_ct]}, {"modality": ["CT"]}]}})
    capped = sql_counts(rt, f"s.dataset_id = '{lung_ct}' AND "
                        + has_study("'CT' = ANY(st.modalities)"),
                        "'CT' = ANY(st.modalities)", params)[None]
    uncapped = sql_counts(rt, f"s.dataset_id = '{lung_ct}' AND "
                          + has_study("'CT' = ANY(st.modalities)"),
                          "'CT' = ANY(st.modalities)", params, cap=1000)[None]
    assert (reply["total"]["subjects"]["value"], reply["total"]["studies"]["value"]) == capped
    assert uncapped[1] - capped[1] >= 40  # the amplifier's 40 studies beyond the cap

    # 7. withdrawn datasets (and drafts) are not counted: only published ones, once the
    # catalogue metadata behind the cells is read again
    everyone = {"criteria": {"all_of": []}, "group_by": ["dataset"]}
    before = rt.cohorts.count(who, everyone)
    unchanged = rt.cohorts.context()
    rt.cohorts.expire_context()  # the metadata cache (CONTEXT_TTL) expires: checked, kept
    assert rt.cohorts.context() is unchanged
    rt.datasets.set_status(SYSTEM, lung_ct, DatasetStatus.WITHDRAWN)
    assert rt.cohorts.context() is unchanged  # within CONTEXT_TTL nothing is read
    rt.cohorts.expire_context()
    after = rt.cohorts.count(who, everyone)
    assert rt.cohorts.context() is not unchanged
    assert lung_ct in unchanged.datasets
    assert lung_ct in rt.cohorts.context().unpublished
    assert lung_ct not in {g["dataset"] for g in after["groups"]}
    counted = {g["dataset"]: g["subjects"]["value"] for g in before["groups"]}
    assert after["total"]["subjects"]["value"] == (
        before["total"]["subjects"]["value"] - counted[lung_ct])
    # a new organisation is a provider cell once the stamp is checked again
    rt.identities.create_organisation(SYSTEM, Organisation("prov-new", "PROV-NEW", "PT"))
    rt.cohorts.expire_context()
    assert "prov-new" in rt.cohorts.context().providers


def test_tantivy_counts_stay_exact_when_more_values_occur_than_a_pass_asks_for(
        config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Grouped counts on tantivy ask for the values present without listing the cells'; when
    more occur than asked for (here: always, one value) they ask again with the list. The
    ground-truth questions above still hold on that path."""
    from catalogue.search.backends import tantivy_backend

    monkeypatch.setattr(tantivy_backend, "TERMS_HEADROOM", (0, 1))
    rt = Runtime(config).start()
    try:
        assert rt.search is not None and rt.search.name == "tantivy"
        rt.cohorts.policy = dataclasses.replace(rt.cohorts.policy, exact=True, budget=1e9,
                                                organisation_budget=1e9)
        test_exact_counts_equal_sql_ground_truth(rt)
    finally:
        rt.close()


def test_both_engines_agree_on_the_same_questions(config: Config,
                                                  opensearch_config: Config) -> None:
    """Conformance: the same staged records, the same questions, identical true counts."""
    questions = [
        {"criteria": {"all_of": [{"condition": [LUNG]}, {"study": {
            "modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}}]},
         "group_by": ["dataset", "sex"]},
        {"criteria": {"any_of": [{"body_part": ["PELVIS"]}, {"period": {"from": "2015"}}]},
         "group_by": ["modality", "provider"]},
        {"criteria": {"none_of": [{"condition": {"concepts": [LUNG], "descendants": False}}]},
         "group_by": ["country", "age_band"]},
    ]
    answers: list[list[dict[str, Any]]] = []
    for cfg in (config, opensearch_config):
        rt = Runtime(cfg).start()
        try:
            rt.cohorts.policy = dataclasses.replace(rt.cohorts.policy, exact=True, budget=1e9,
                                                    organisation_budget=1e9)
            if not answers:
                stage(rt)
                who = researcher(rt)
            else:  # the same database: index it into this engine
                assert rt.indexer is not None
                rt.indexer.rebuild(index="subjects")
            answers.append([rt.cohorts.count(who, q) for q in questions])
        finally:
            rt.close()
    for tantivy_reply, opensearch_reply in zip(*answers, strict=True):
        assert tantivy_reply["total"] == opensearch_reply["total"]
        assert tantivy_reply["groups"] == opensearch_reply["groups"]
        assert any(g["subjects"]["value"] for g in tantivy_reply["groups"])
