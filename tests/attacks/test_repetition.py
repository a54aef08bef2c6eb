"""Averaging attacks: ask the same question again — verbatim, in parallel, after a restart,
through other tokens and colleagues, or reworded equivalently — to average the noise away.
Deterministic keyed noise must give one answer, and the ledger must charge it once."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from catalogue.config import Config
from catalogue.model.identity import SYSTEM, Organisation, Role
from catalogue.runtime import Runtime
from catalogue.testing.app_server import serve
from tests.attacks import (
    DEFAULTS,
    EPSILON,
    ORG_QUESTIONS,
    QUESTIONS,
    Api,
    Attacker,
    World,
    call,
    decoy,
    record,
    run_trials,
)
from tests.conftest import make_config
from tests.integration.cohorts import LUNG, LUNG_ADENO, NSCLC, stage

QUESTION: dict[str, Any] = {"criteria": {"all_of": [
    {"condition": [LUNG]},
    {"study": {"modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}},
    {"country": ["ES"]},
    {"period": {"from": "2012"}}]},
    "group_by": ["dataset"]}


@pytest.fixture(scope="module", autouse=True)
def organisations(world: World) -> None:
    """Two researcher organisations besides the providers."""
    for org in ("uni-x", "uni-y"):
        world.rt.identities.create_organisation(SYSTEM, Organisation(org, org.upper(), "DE"))


def numbers(answer: dict[str, Any]) -> str:
    """Everything an answer releases about the data (the total and every group)."""
    return json.dumps([answer["question"], answer["total"], answer["groups"]], sort_keys=True)


# -- 2a. the same question 1,000 times --------------------------------------------------------
def test_the_same_question_1000_times_is_one_answer_charged_once(world: World) -> None:
    """Goal: average the noise away by asking one question 1,000 times. Every answer must be
    identical and only the first charged: the budget left after it never moves."""
    token = world.api.researcher()
    # lung cancer in Spain: about 70 subjects (the lung dataset alone has 61), far above the
    # floor, so the total is a released number whatever the secret's noise
    question = {"criteria": {"all_of": [{"condition": [LUNG]}, {"country": ["ES"]}]}}
    first = world.api.count(token, question)
    assert first.status == 200 and first.body["parameters"]["charged"] == EPSILON
    assert first.body["budget"]["researcher"]["remaining"] == DEFAULTS.budget - EPSILON
    assert not first.body["total"]["subjects"]["suppressed"]  # a real number to average

    replies = run_trials(lambda _: world.api.count(token, question), range(999), workers=8)
    assert {r.status for r in replies} == {200}
    assert {numbers(r.body) for r in replies} == {numbers(first.body)}
    assert {(r.body["parameters"]["charged"], r.body["parameters"]["repeated"],
             r.body["budget"]["researcher"]["remaining"]) for r in replies} == {
        (0, True, DEFAULTS.budget - EPSILON)}
    budget = call(world.api.base, "GET", "/api/v1/cohorts/budget", token=token).body
    assert budget["researcher"]["spent"] == EPSILON
    record("averaging: 1000 asks of one question -> 1 distinct answer, charged once")


def test_parallel_questions_cannot_overspend_the_budget(world: World) -> None:
    """Goal: race the budget check — 24 distinct questions sent at once by one researcher.
    Exactly QUESTIONS may be answered (the budget over ε); the rest are refused."""
    token = world.api.researcher()
    bodies = [{"criteria": {"all_of": [{"condition": [LUNG]}, decoy("race", i)]}}
              for i in range(24)]
    replies = run_trials(lambda body: world.api.count(token, body), bodies, workers=12)
    statuses = sorted(r.status for r in replies)
    assert statuses.count(200) == QUESTIONS and statuses.count(429) == 24 - QUESTIONS, statuses
    budget = call(world.api.base, "GET", "/api/v1/cohorts/budget", token=token).body
    assert budget["researcher"]["spent"] == DEFAULTS.budget


# -- 2c. tokens and colleagues ----------------------------------------------------------------
def test_tokens_and_colleagues_get_one_answer_and_share_the_organisation_budget(
        world: World) -> None:
    """Goal: average over several tokens and several researchers of one organisation, and
    outspend the organisation by spreading questions over colleagues. Every token gets the
    same numbers (free after the organisation's first ask); the organisation's budget is shared."""
    api, rt = world.api, world.rt
    accounts = [api.account(Role.RESEARCHER, "uni-x") for _ in range(3)]
    tokens = [token for _, token in accounts]
    tokens += [rt.identities.issue_token(SYSTEM, name).secret for name, _ in accounts]
    answers = [api.count(token, QUESTION) for token in tokens]
    assert all(a.status == 200 for a in answers)
    assert len({numbers(a.body) for a in answers}) == 1
    assert [a.body["parameters"]["charged"] for a in answers] == [EPSILON] + [0.0] * 5
    assert answers[-1].body["budget"]["organisation"]["spent"] == EPSILON
    outsider = api.count(api.researcher("uni-y"), QUESTION)  # another organisation: same
    assert numbers(outsider.body) == numbers(answers[0].body)  # numbers, its own charge
    assert outsider.body["parameters"]["charged"] == EPSILON

    colleagues = [api.researcher("uni-y") for _ in range(4)]  # more own budget than the org's
    answered, n = 1, 0  # the outsider's question counts for uni-y already
    while True:
        reply = api.count(colleagues[n % 4], {"criteria": {"all_of": [
            {"condition": [LUNG]}, decoy("org", n)]}})
        n += 1
        if reply.status == 429:
            assert "organisation privacy budget" in reply.body["error"]["message"]
            break
        assert reply.status == 200 and n < 60
        answered += 1
    assert answered == ORG_QUESTIONS
    record(f"organisation budget: {answered} questions answered across 5 researchers of one "
           f"organisation, then 429")


# -- 3. equivalent rewrites --------------------------------------------------------------------
def rewrites() -> list[tuple[str, dict[str, Any]]]:
    """Equivalent forms of ``QUESTION`` (by its canonical form's own rules)."""
    base = QUESTION["criteria"]["all_of"]
    cond, study, country, period = (copy.deepcopy(m) for m in base)

    def q(*members: Any, group_by: Any = ("dataset",)) -> dict[str, Any]:
        return {"criteria": {"all_of": list(members)},
                "group_by": list(group_by) if isinstance(group_by, tuple) else group_by}

    def study_with(**changes: Any) -> dict[str, Any]:
        return {"study": {**study["study"], **changes}}

    closure = [LUNG, NSCLC, LUNG_ADENO, "snomed:254632001", "snomed:254634000"]
    return [
        ("members reversed", q(period, country, study, cond)),
        ("study keys reordered, group_by as a string", q(cond, {"study": {
            "age": {"lte": 70, "gte": 50}, "body_part": ["CHEST"], "modality": ["CT"]}},
            country, period, group_by="dataset")),
        ("duplicate values", q({"condition": [LUNG, LUNG]}, study_with(
            modality=["CT", "CT"], body_part=["CHEST", "CHEST"]), {"country": ["ES", "ES"]},
            period)),
        ("nested all_of", {"criteria": {"all_of": [{"all_of": [cond, study]}, {"all_of": [
            {"all_of": [country]}, period]}]}, "group_by": ["dataset"]}),
        ("explicit narrower concepts, descendants false",
         q({"condition": {"concepts": closure, "descendants": False}}, study, country, period)),
        ("descendants flag explicit", q({"condition": {"concepts": [LUNG],
                                                       "descendants": True}},
                                        study, country, period)),
        ("parent and some of its descendants", q({"condition": [NSCLC, LUNG, LUNG_ADENO]},
                                                 study, country, period)),
        ("condition as a string", q({"condition": LUNG}, study, country, period)),
        ("ICD-10 code", q({"condition": ["icd10:C34"]}, study, country, period)),
        ("vocabulary label", q({"condition": ["Lung cancer"]}, study, country, period)),
        ("empty groups", q(cond, {"all_of": []}, study, {"any_of": []}, country,
                           {"none_of": []}, period)),
        ("age 52-74 (the same 5-year bands)", q(cond, study_with(age={"gte": 52, "lte": 74}),
                                                country, period)),
        ("fractional ages", q(cond, study_with(age={"gte": 54.9, "lte": 70.5}), country,
                              period)),
        ("single-member any_of", q(cond, study, {"any_of": [country]}, period)),
        ("single-member all_of", q({"all_of": [cond]}, {"all_of": [study]}, country, period)),
        ("study object instead of the top-level shorthand",
         q(cond, study, country, {"study": {"period": {"from": "2012"}}})),
        ("period as a month", q(cond, study, country, {"period": {"from": "2012-07"}})),
        ("period up to the index's last year", q(cond, study, country, {
            "period": {"from": "2012", "to": "2100"}})),
        ("country in lower case", q(cond, study, {"country": ["es"]}, period)),
        ("country intersection", q(cond, study, {"all_of": [{"country": ["ES", "IT"]},
                                                            {"country": ["ES"]}]}, period)),
        ("country union of one", q(cond, study, {"any_of": [{"country": ["ES"]},
                                                            {"country": ["es"]}]}, period)),
        ("modality and body part spelled differently", q(cond, study_with(
            modality=["ct"], body_part=["Chest"]), country, period)),
        ("body part synonym", q(cond, study_with(body_part=["THORAX"]), country, period)),
        ("body part with its narrower parts", q(cond, study_with(
            body_part=["CHEST", "LUNG", "HEART", "BREAST"]), country, period)),
        ("padded values", q({"condition": [f" {LUNG} "]}, study_with(modality=[" CT "]),
                            country, period)),
        ("duplicate members", q(cond, cond, study, study, country, period)),
        ("duplicate dimension", q(cond, study, country, period,
                                  group_by=["dataset", "dataset"])),
        ("everything at once", {"group_by": "dataset", "criteria": {"all_of": [
            {"any_of": [{"country": ["es"]}, {"any_of": []}]},
            {"all_of": [{"period": {"from": "2012-03"}}, {"none_of": []}]},
            {"study": {"body_part": ["THORAX", "LUNG"], "age": {"lte": 74, "gte": 51},
                       "modality": ["ct", "CT"]}},
            {"condition": {"concepts": ["icd10:C34", NSCLC]}}]}}),
    ]


def test_equivalent_rewrites_are_one_question(world: World) -> None:
    """Goal: draw fresh noise by rewording one question in equivalent ways the canonical form
    promises to see through (order, duplicates, nesting, concept closure, codes and labels,
    empty and single-member groups, age bands, months, case, shorthand). Every rewrite must
    get the identical answer (same canonical question) and cost nothing after the first."""
    me = Attacker(world.api, world.api.researcher())
    first = world.api.count(me.token, QUESTION)
    assert first.status == 200 and first.body["parameters"]["charged"] == EPSILON
    forms = rewrites()
    assert len(forms) >= 20
    different = []
    for name, body in forms:
        reply = world.api.count(me.token, body)
        assert reply.status == 200, (name, reply.raw)
        if (numbers(reply.body) != numbers(first.body)
                or reply.body["parameters"]["charged"] != 0):
            different.append(f"{name}: {json.dumps(reply.body['question'])}")
    record(f"equivalent rewrites: {len(forms) - len(different)}/{len(forms)} one question")
    assert not different, "\n".join(
        [f"canonical: {json.dumps(first.body['question'])}", *different])


# -- 2b. restart -------------------------------------------------------------------------------
def ask_once(config: Config, body: dict[str, Any], token: str | None = None,
             staging: bool = False) -> tuple[dict[str, Any], str]:
    """Start a runtime on ``config``, (stage,) ask ``body`` over HTTP, stop it: (answer,
    the token used — a new researcher unless given)."""
    rt = Runtime(config).start()
    try:
        if staging:
            stage(rt)
        with serve(rt) as base:
            api = Api(base, rt)
            token = token or api.researcher()
            reply = api.count(token, body)
    finally:
        rt.close()
    assert reply.status == 200, reply.raw
    return reply.body, token


def test_the_same_answer_after_a_restart(config: Config) -> None:
    """Goal: get fresh noise by asking again after the service restarts (a new runtime on the
    same database and secret), as the same researcher and as another. The answer must be
    identical, and free for the researcher who asked before."""
    before, token = ask_once(config, QUESTION, staging=True)
    assert before["parameters"]["charged"] == EPSILON
    after, _ = ask_once(config, QUESTION, token)
    other, _ = ask_once(config, QUESTION)
    assert numbers(after) == numbers(before) and after["parameters"]["repeated"] is True
    assert numbers(other) == numbers(before) and other["parameters"]["charged"] == EPSILON
    record("restart: identical answers after a restart (free for the same researcher)")


def test_a_new_secret_does_not_give_free_fresh_noise(config: Config, tmp_path: Path,
                                                     db_url: str) -> None:
    """Goal: draw fresh noise for free when the server secret changes (a rotation, or one
    replica configured with another secret). Noise is keyed on the secret but the ledger's
    free repeat is keyed on the question and data version only: the same question asked
    again must then either give the same numbers or be charged as new."""
    before, token = ask_once(config, QUESTION, staging=True)
    rotated = make_config(tmp_path, db_url, secret_key="another-secret-" + "x" * 40)
    again, _ = ask_once(rotated, QUESTION, token)
    fresh = numbers(again) != numbers(before)
    record(f"secret rotation: numbers changed={fresh}, charged "
           f"{again['parameters']['charged']} (repeated={again['parameters']['repeated']})")
    assert not fresh or again["parameters"]["charged"] == EPSILON
