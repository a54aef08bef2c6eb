"""Data-update differencing: ask Q, one patient matching Q is added, ask Q again. The data
version moves, so the second answer carries fresh noise (and is charged again); whether a
patient was added must stay a near coin flip."""

from __future__ import annotations

import random
from typing import Any

from catalogue.config import Config
from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.store.audit import enqueue
from catalogue.testing.app_server import serve
from tests.attacks import (
    EPSILON,
    Api,
    Attacker,
    Score,
    Study,
    decoy,
    insert_subject,
    membership_llr,
    record,
    run_trials,
)
from tests.integration.cohorts import add_dataset

BOUND = 0.60
PRIOR = range(0, 60)


def test_adding_one_patient_is_not_revealed_by_asking_again(module_config: Config) -> None:
    """Goal: tell whether one patient (the only woman with a study by ``Upd-NNN``, shared by
    10-29 men) was added between two rounds of 5 questions (distinct rewordings, the whole
    budget): Bayes over the unknown count of the others, before vs after. The answers after
    the update must be on the new data version, charged again, with fresh noise; accuracy
    over 100 trials ≤ 0.60."""
    rng = random.Random(99)
    rt = Runtime(module_config).start()
    try:
        rt.identities.create_organisation(SYSTEM, Organisation("prov-a", "PROV-A", "ES"))
        home = add_dataset(rt, "prov-a", "updates", "ES")
        others = add_dataset(rt, "prov-a", "background", "ES")
        added = [rng.random() < 0.5 for _ in range(100)]
        background: list[list[Study]] = [[] for _ in range(40)]
        for n in range(100):
            for j in rng.sample(range(40), rng.randint(10, 29)):
                background[j].append(Study("CT", "CHEST", f"Upd-{n:03d}", 50, 2016))
        with rt.database.transaction() as conn:
            ids = [insert_subject(conn, others, f"bg-{j}", "male", 1960, [], studies)
                   for j, studies in enumerate(background)]
            enqueue(conn, "subject", ids)
        assert rt.indexer is not None
        rt.indexer.drain()

        with serve(rt) as base:
            api = Api(base, rt)
            attackers = [Attacker(api, api.researcher()) for _ in range(100)]

            def ask(n: int) -> list[dict[str, Any]]:
                return [attackers[n].ask_new({"all_of": [{"manufacturer": [f"Upd-{n:03d}"]},
                                                         decoy("u", i)]}) for i in range(5)]

            before = run_trials(ask, range(100))
            with rt.database.transaction() as conn:  # one patient per "added" trial
                ids = [insert_subject(conn, home, f"new-{n}", "female", 1960, [],
                                      [Study("CT", "CHEST", f"Upd-{n:03d}", 56, 2024)])
                       for n in range(100) if added[n]]
                enqueue(conn, "subject", ids)
            rt.indexer.drain()
            after = run_trials(ask, range(100))
            for attacker in attackers:
                attacker.refused({"all_of": [{"manufacturer": ["Upd-000"]}, decoy("u", 99)]})
    finally:
        rt.close()

    old = before[0][0]["parameters"]["data_version"]
    new = after[0][0]["parameters"]["data_version"]
    assert new > old
    assert {a["parameters"]["data_version"] for answers in before for a in answers} == {old}
    assert {a["parameters"]["data_version"] for answers in after for a in answers} == {new}
    assert all(a["parameters"]["charged"] == EPSILON and not a["parameters"]["repeated"]
               for answers in after for a in answers)
    unchanged = [n for n in range(100) if not added[n]]
    moved = sum(b["total"] != a["total"] for n in unchanged
                for b, a in zip(before[n], after[n], strict=True))
    assert moved > 0  # fresh noise on the same true count: the version keys the noise
    score = Score("data update (5 questions before, 5 after one patient is added or not)")
    for n in range(100):
        def observed(answers: list[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
            return [(a["total"]["subjects"], a["parameters"]["noise_scale"]["total_subjects"])
                    for a in answers]

        llr = membership_llr(observed(after[n]), observed(before[n]), PRIOR)
        score.judge(llr, added[n], f"update-{n}")
    record(f"data update: {moved} of {5 * len(unchanged)} answers changed with no data "
           f"change (fresh noise on the new version)")
    assert score.within(BOUND)
