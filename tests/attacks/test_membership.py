"""Membership attacks: is one patient in the catalogue? Differencing, trackers, total minus
groups, parent concept minus children, study-count amplification, age reconstruction.

One population is staged once for the module: ≥100 targets, each found by a unique
combination (a female patient with a study by the manufacturer ``Vendor-NNN``, which 10-29
male background patients share), each present with probability 1/2 (seeded); 100 targets with
60 studies each (``Amp-NNN``); padding patients whose counts the informed attacker knows.
Every trial is a fresh researcher who spends their whole budget (10 questions of ε 1) on one
target and then guesses with the Bayes rule under the published mechanism.
"""

from __future__ import annotations

import dataclasses
import random
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from catalogue.config import Config
from catalogue.model.identity import SYSTEM, Identity, Organisation, Role, User
from catalogue.ontology import get_vocabulary
from catalogue.privacy.disclosure import DisclosurePolicy
from catalogue.runtime import Runtime
from catalogue.services.cohorts import CohortService
from catalogue.store.audit import enqueue
from catalogue.testing.app_server import serve
from tests.attacks import (
    EPSILON,
    FLOOR,
    ROUNDING,
    Api,
    Attacker,
    Observation,
    Score,
    Study,
    decoy,
    insert_subject,
    likelihood,
    membership_llr,
    record,
    release_probability,
    run_trials,
    safe_log,
)
from tests.integration.cohorts import add_dataset

LUNG = "snomed:93880001"
CHILDREN = tuple(get_vocabulary("conditions").descendants(LUNG))  # 4 narrower diagnoses
BOUND = 0.60          # the accuracy no membership attack may exceed
PRIOR = range(0, 60)  # the attacker knows only that fewer than 60 others match
INFORMED_PAD = 14     # others matching, known to the informed attacker: 14 vs 15 straddles
                      # the rounding edge at 15


@dataclass(frozen=True)
class Target:
    n: int
    manufacturer: str
    present: bool
    age: int         # age at the target's study
    background: int  # male background patients sharing the manufacturer


@dataclass
class Population:
    datasets: dict[str, str]
    targets: list[Target]
    heavy: list[Target]  # 60 studies each


@dataclass
class World:
    rt: Runtime
    api: Api
    population: Population


def fixed_dataset(rt: Runtime, organisation: str, name: str, country: str) -> str:
    """A published dataset whose id is the same on every run: grouped questions name
    datasets, so their noise — and the measured figures — are then reproducible."""
    created = add_dataset(rt, organisation, name, country)
    fixed = str(uuid.uuid5(uuid.NAMESPACE_URL, f"attack-dataset:{name}"))
    with rt.database.transaction() as conn:
        conn.execute("UPDATE datasets SET id = %s WHERE id = %s", (fixed, created))
    return fixed


def stage_population(rt: Runtime, seed: int = 20240611) -> Population:
    rng = random.Random(seed)
    for org, country in (("prov-a", "ES"), ("prov-b", "ES"), ("prov-c", "IT")):
        rt.identities.create_organisation(SYSTEM, Organisation(org, org.upper(), country))
    datasets = {name: fixed_dataset(rt, org, name, country) for name, org, country in (
        ("targets", "prov-a", "ES"), ("bg-1", "prov-a", "ES"), ("bg-2", "prov-b", "ES"),
        ("bg-3", "prov-c", "IT"), ("pad", "prov-b", "ES"))}
    homes = [datasets[n] for n in ("targets", "bg-1", "bg-2", "bg-3")]
    targets = [Target(n, f"Vendor-{n:03d}", rng.random() < 0.5, rng.randint(55, 69),
                      rng.randint(10, 29)) for n in range(100)]
    heavy = [Target(n, f"Amp-{n:03d}", rng.random() < 0.5, 60, rng.randint(5, 25))
             for n in range(100)]
    vendor_studies: list[list[Study]] = [[] for _ in range(40)]
    for t in targets:
        for j in rng.sample(range(40), t.background):
            vendor_studies[j].append(Study("CT", "CHEST", t.manufacturer, 40, 2014))
    heavy_studies: list[list[Study]] = [[] for _ in range(100)]
    for t in heavy:  # at most 20 studies per background patient: none beyond the cap
        free = [j for j in range(100) if len(heavy_studies[j]) < 20]
        for j in rng.sample(free, t.background):
            heavy_studies[j].append(Study("CT", "CHEST", t.manufacturer, 45, 2016))
    ids: list[str] = []
    with rt.database.transaction() as conn:
        for t in targets:
            if t.present:
                ids.append(insert_subject(conn, datasets["targets"], f"target-{t.n}", "female",
                                          2015 - t.age, [LUNG],
                                          [Study("CT", "CHEST", t.manufacturer, t.age, 2015)]))
        for t in heavy:
            if t.present:
                ids.append(insert_subject(
                    conn, datasets["targets"], f"heavy-{t.n}", "female", 1950, [LUNG],
                    [Study("CT", "CHEST", t.manufacturer, 60 + k // 10, 2010 + k // 6)
                     for k in range(60)]))
        for j, studies in enumerate(vendor_studies):
            ids.append(insert_subject(conn, homes[j % 4], f"vbg-{j}", "male", 1970,
                                      [CHILDREN[j % 4]], studies))
        for j, studies in enumerate(heavy_studies):
            ids.append(insert_subject(conn, homes[1 + j % 3], f"hbg-{j}", "male", 1970,
                                      [CHILDREN[j % 4]], studies))
        for j in range(40):
            ids.append(insert_subject(conn, datasets["pad"], f"pad-{j}", "male", 1980, [],
                                      [Study("MR", "BRAIN", f"Pad-{j:02d}", 30, 2013)]))
        enqueue(conn, "subject", ids)
    assert rt.indexer is not None
    rt.indexer.drain()
    return Population(datasets, targets, heavy)


@pytest.fixture(scope="module")
def world(module_config: Config) -> Iterator[World]:
    rt = Runtime(module_config).start()
    try:
        assert rt.search is not None and rt.search.name == "tantivy"
        population = stage_population(rt)
        with serve(rt) as base:
            yield World(rt, Api(base, rt), population)
    finally:
        rt.close()


# -- question builders ------------------------------------------------------------------------
def by(manufacturer: str) -> dict[str, Any]:
    return {"manufacturer": [manufacturer]}


def padding(k: int) -> dict[str, Any]:
    """The first ``k`` padding patients (one per ``Pad-NN`` manufacturer)."""
    return {"manufacturer": [f"Pad-{j:02d}" for j in range(k)]}


WITHOUT_TARGET = {"none_of": [{"sex": ["female"]}]}  # "Q minus the target": its unique part


def subjects(answer: dict[str, Any]) -> Observation:
    return answer["total"]["subjects"], answer["parameters"]["noise_scale"]["total_subjects"]


def studies(answer: dict[str, Any]) -> Observation:
    return answer["total"]["studies"], answer["parameters"]["noise_scale"]["total_studies"]


def check_mechanism(answer: dict[str, Any]) -> None:
    """The attacker's model is the published one."""
    params = answer["parameters"]
    assert (params["rounding"], params["floor"], params["mechanism"]) == (ROUNDING, FLOOR,
                                                                        "laplace")


# -- 1. differencing --------------------------------------------------------------------------
def test_differencing_q_versus_q_without_the_target(world: World) -> None:
    """Goal: learn whether the target is in the catalogue from Q (patients with a study by the
    target's manufacturer) against Q minus the target (the same, men only), averaging 5 + 5
    distinct rewordings (decoy exclusions) that each draw fresh noise, i.e. the whole budget;
    the unknown number of others is marginalised (Bayes). Accuracy must stay ≤ 0.60."""
    score = Score("differencing (Q vs Q minus target, 5+5 questions)")

    def trial(t: Target) -> float:
        me = Attacker(world.api, world.api.researcher())
        q = by(t.manufacturer)
        with_target = [subjects(me.ask_new({"all_of": [q, decoy("d", i)]})) for i in range(5)]
        without = [subjects(me.ask_new({"all_of": [q, WITHOUT_TARGET, decoy("d", i)]}))
                   for i in range(5)]
        me.refused({"all_of": [q, decoy("d", 99)]})  # the whole budget was spent
        assert me.asked == 10
        return membership_llr(with_target, without, PRIOR)

    targets = world.population.targets
    for t, llr in zip(targets, run_trials(trial, targets), strict=True):
        score.judge(llr, t.present, f"diff-{t.n}")
    assert score.trials >= 100
    assert score.within(BOUND)


def test_informed_differencing_at_the_rounding_edge(world: World) -> None:
    """Goal: the same, for the adversary differential privacy is meant to stop — one who
    knows every other matching record. They pad the target's unique combination with 14
    patients they know (``Pad-00``..``Pad-13``) so the count is 14 or 15, right at the edge
    where rounding to 10 flips, and spend all 10 questions (distinct rewordings) on it. The
    guess is the likelihood ratio with the count of the others known. Accuracy ≤ 0.60."""
    score = Score(f"informed differencing (others known = {INFORMED_PAD}, 10 questions)")

    def trial(t: Target) -> float:
        me = Attacker(world.api, world.api.researcher())
        unique = {"all_of": [by(t.manufacturer), {"sex": ["female"]}]}
        q = {"any_of": [unique, padding(INFORMED_PAD)]}
        answers = [me.ask_new({"all_of": [q, decoy("i", i)]}) for i in range(10)]
        check_mechanism(answers[0])
        return membership_llr([subjects(a) for a in answers], [], [INFORMED_PAD])

    targets = world.population.targets
    for t, llr in zip(targets, run_trials(trial, targets), strict=True):
        score.judge(llr, t.present, f"informed-{t.n}")
    assert score.trials >= 100
    assert score.within(BOUND)


# -- 4. tracker -------------------------------------------------------------------------------
def test_tracker_padding_lifts_the_target_over_the_floor(world: World) -> None:
    """Goal: the target's unique combination alone is always suppressed (count 0 or 1), so the
    attacker pads it: count(target-attrs OR padding) − count(padding), with padding patients
    they do not know the number of (10-29 ``Pad-NN`` manufacturers), 5 + 5 rewordings, Bayes
    over the padding's unknown count. Accuracy ≤ 0.60."""
    score = Score("tracker (target OR padding vs padding, 5+5 questions)")

    def trial(t: Target) -> float:
        me = Attacker(world.api, world.api.researcher())
        unique = {"all_of": [by(t.manufacturer), {"sex": ["female"]}]}
        pad = padding(10 + t.n % 20)
        alone = me.ask_new(unique)  # the tracker's reason to exist: alone it is suppressed
        with_target = [subjects(me.ask_new({"all_of": [{"any_of": [unique, pad]},
                                                       decoy("t", i)]})) for i in range(5)]
        without = [subjects(me.ask_new({"all_of": [pad, decoy("t", i)]})) for i in range(4)]
        evidence = membership_llr(with_target, without, PRIOR)
        return evidence + membership_llr([subjects(alone)], [], [0])

    targets = world.population.targets
    for t, llr in zip(targets, run_trials(trial, targets), strict=True):
        score.judge(llr, t.present, f"tracker-{t.n}")
    assert score.within(BOUND)


# -- 5. total minus groups ------------------------------------------------------------------
def _convolve(dists: Sequence[list[float]]) -> list[float]:
    out = [1.0]
    for dist in dists:
        nxt = [0.0] * (len(out) + len(dist) - 1)
        for i, a in enumerate(out):
            if a:
                for j, b in enumerate(dist):
                    nxt[i + j] += a * b
        out = nxt
    return out


def grouped_llr(answers: list[tuple[dict[str, Any], int]], home: str, dims: list[str],
                top: int = 40) -> float:
    """Bayes over every dataset's unknown count of others (0..``top``): the target's cell
    and the total (= the sum of all cells: "total minus the other groups") both carry it.
    ``answers``: (grouped answer, 1 if the question includes the target)."""
    totals = []
    for member in (0, 1):
        cells = []
        for dim in dims:
            weights = []
            for c in range(top + 1):
                obs = 1.0
                for answer, inc in answers:
                    cell = next(g for g in answer["groups"] if g["dataset"] == dim)
                    true = c + member * inc * (dim == home)
                    obs *= release_probability(
                        cell["subjects"], true, answer["parameters"]["noise_scale"]
                        ["cell_subjects"])
                weights.append(obs)
            cells.append(weights)
        spread = _convolve(cells)
        totals.append(sum(w * likelihood([subjects(a) for a, inc in answers if not inc], s)
                          * likelihood([subjects(a) for a, inc in answers if inc], s + member)
                          for s, w in enumerate(spread) if w))
    return safe_log(totals[1]) - safe_log(totals[0])


def test_total_minus_other_groups_isolates_no_one(world: World) -> None:
    """Goal: group Q by dataset and take the total minus the other datasets' cells to get a
    second, independent reading of the target's cell; 5 + 5 grouped questions (with and
    without the target), Bayes over every cell's unknown count. Every released number carries
    its own noise, so the derived reading is only noisier. Accuracy ≤ 0.60."""
    score = Score("total minus other groups (by dataset, 5+5 questions)")
    home = world.population.datasets["targets"]
    dims = sorted(world.population.datasets.values())

    def trial(t: Target) -> float:
        me = Attacker(world.api, world.api.researcher())
        q = by(t.manufacturer)
        answers = [(me.ask_new({"all_of": [q, decoy("g", i)]}, ["dataset"]), 1) for i in range(5)]
        answers += [(me.ask_new({"all_of": [q, WITHOUT_TARGET, decoy("g", i)]},
                                ["dataset"]), 0) for i in range(5)]
        assert {g["dataset"] for g in answers[0][0]["groups"]} == set(dims)
        return grouped_llr(answers, home, dims)

    targets = world.population.targets
    for t, llr in zip(targets, run_trials(trial, targets), strict=True):
        score.judge(llr, t.present, f"groups-{t.n}")
    assert score.within(BOUND)


# -- 7. parent concept minus its children ------------------------------------------------------
def test_parent_concept_minus_children(world: World) -> None:
    """Goal: isolate patients coded with the parent diagnosis only (the target is coded
    "lung cancer", the others with its 4 narrower diagnoses): count(parent with descendants)
    − Σ count(child, descendants false), twice (2 × 5 questions), Bayes over the children's
    unknown counts. Accuracy ≤ 0.60. The canonical form makes "parent with descendants" and
    the explicit list of it and all its descendants one question (same answer, no charge)."""
    score = Score("parent minus children (2 rounds of 1+4 questions)")
    first_target = world.population.targets[0]
    me = Attacker(world.api, world.api.researcher())
    implicit = me.ask_new({"all_of": [by(first_target.manufacturer), {"condition": [LUNG]}]})
    explicit = me.ask({"all_of": [{"condition": {"concepts": [*CHILDREN, LUNG],
                                                 "descendants": False}},
                                  by(first_target.manufacturer)]})
    assert explicit["question"] == implicit["question"]
    assert explicit["total"] == implicit["total"] and explicit["parameters"]["charged"] == 0

    def trial(t: Target) -> float:
        me = Attacker(world.api, world.api.researcher())
        q = by(t.manufacturer)
        parents, children = [], []
        for r in range(2):
            parents.append(subjects(me.ask_new({"all_of": [q, {"condition": [LUNG]},
                                                           decoy("p", r)]})))
            children.append([subjects(me.ask_new({"all_of": [q, decoy("p", r), {
                "condition": {"concepts": [child], "descendants": False}}]}))
                for child in CHILDREN])
        totals = []
        for member in (0, 1):
            per_child = [[likelihood([children[r][i] for r in range(2)], k) for k in range(31)]
                         for i in range(len(CHILDREN))]
            spread = _convolve(per_child)
            totals.append(sum(w * likelihood(parents, s + member)
                              for s, w in enumerate(spread) if w))
        return safe_log(totals[1]) - safe_log(totals[0])

    targets = world.population.targets
    for t, llr in zip(targets, run_trials(trial, targets), strict=True):
        score.judge(llr, t.present, f"parent-{t.n}")
    assert score.within(BOUND)


# -- 6. age reconstruction ------------------------------------------------------------------
def test_age_ranges_reveal_no_more_than_the_band(world: World) -> None:
    """Goal: learn a known patient's exact age at their study with single-year and overlapping
    age ranges (padded with 14 known patients so the answers are not all suppressed). Ranges
    inside one 5-year band are one canonical question: identical answers, charged once; so
    the answers change only at band edges and the exact age is a guess within the band
    (chance 1/5 at best). Exact-age accuracy must stay ≤ 0.30."""
    exact = Score("age reconstruction: exact age (chance ≤ 0.20)")
    band = Score("age reconstruction: 5-year band (3 bands, chance 0.33)")
    present = [t for t in world.population.targets if t.present][:40]

    def trial(t: Target) -> tuple[bool, bool]:
        me = Attacker(world.api, world.api.researcher())
        seen: dict[tuple[int, int], dict[str, Any]] = {}
        single: dict[int, dict[str, Any]] = {}

        def ask(low: int, high: int) -> dict[str, Any]:
            answer = me.ask({"any_of": [padding(INFORMED_PAD), {"study": {
                "manufacturer": [t.manufacturer], "age": {"gte": low, "lte": high}}}]})
            bands = (low // 5 * 5, high // 5 * 5)
            if bands in seen:  # the same bands: the same question, answer, and no charge
                assert answer["question"] == seen[bands]["question"]
                assert answer["total"] == seen[bands]["total"], (low, high)
                assert answer["parameters"]["charged"] == 0
            else:
                assert answer["parameters"]["charged"] == EPSILON
                seen[bands] = answer
            return answer

        for age in range(55, 70):
            single[age] = ask(age, age)
        for low in (57, 59, 63):
            ask(low, low + 3)
        assert len(seen) == 5  # 3 single bands + 2 band pairs charged; 13 questions free
        rng = random.Random(f"age-{t.n}")
        value = {a: (ans["total"]["subjects"]["value"] or 0) for a, ans in single.items()}
        best = max(value.values())
        guessed = rng.choice([a for a, v in value.items() if v == best])
        return guessed == t.age, guessed // 5 == t.age // 5

    for right_age, right_band in run_trials(trial, present):
        exact.add(right_age)
        band.add(right_band)
    band.report()
    assert exact.report() <= 0.30


# -- 8. study-count amplification -----------------------------------------------------------
def test_study_count_amplification_is_capped(world: World) -> None:
    """Goal: a patient with 60 studies moves study counts by 60 — if uncapped, a far louder
    signal than one subject. The cap (20 studies per patient) bounds the true difference and
    the studies noise scale is ≥ cap/ε; then guess membership of 60-study patients from
    study counts (5 + 5 questions, Bayes over the others' unknown studies), and from study and
    subject counts together. Accuracy ≤ 0.60."""
    rt = world.rt
    policy = rt.cohorts.policy
    cap = policy.study_cap
    exact_view = CohortService(rt.database, rt.search, rt.secret_key, dataclasses.replace(
        DisclosurePolicy(), exact=True, budget=1e9, organisation_budget=1e9))
    user = rt.identities.create_user(SYSTEM, User("", "exact-counter", Role.RESEARCHER))
    who = Identity(user_id=user.id, username=user.username, role=Role.RESEARCHER)
    for t in [t for t in world.population.heavy if t.present][:3]:
        full = exact_view.count(who, {"criteria": by(t.manufacturer)})["total"]
        rest = exact_view.count(who, {"criteria": {"all_of": [by(t.manufacturer),
                                                              WITHOUT_TARGET]}})["total"]
        assert full["subjects"]["value"] - rest["subjects"]["value"] == 1
        assert full["studies"]["value"] - rest["studies"]["value"] == cap  # 60 studies, cap 20

    by_studies = Score("study amplification: 60-study patient from study counts (5+5)")
    by_both = Score("study amplification: from study and subject counts (5+5)")
    scales: set[float] = set()

    def trial(t: Target) -> tuple[float, float]:
        me = Attacker(world.api, world.api.researcher())
        q = by(t.manufacturer)
        with_target = [me.ask_new({"all_of": [q, decoy("a", i)]}) for i in range(5)]
        without = [me.ask_new({"all_of": [q, WITHOUT_TARGET, decoy("a", i)]})
                   for i in range(5)]
        scales.update(a["parameters"]["noise_scale"]["total_studies"]
                      for a in with_target + without)
        from_studies = membership_llr([studies(a) for a in with_target],
                                      [studies(a) for a in without], range(0, 201), cap)
        from_subjects = membership_llr([subjects(a) for a in with_target],
                                       [subjects(a) for a in without], PRIOR)
        return from_studies, from_subjects

    heavy = world.population.heavy
    for t, (from_studies, from_subjects) in zip(heavy, run_trials(trial, heavy), strict=True):
        by_studies.judge(from_studies, t.present, f"amp-{t.n}")
        by_both.judge(from_studies + from_subjects, t.present, f"amp-{t.n}")
    assert len(scales) == 1 and min(scales) >= cap / policy.epsilon
    record(f"study amplification: true difference {cap} studies (60 held, cap {cap}); noise "
           f"scale of study totals {min(scales):g} (≥ cap/ε = {cap / policy.epsilon:g})")
    assert by_studies.within(BOUND)
    assert by_both.within(BOUND)
