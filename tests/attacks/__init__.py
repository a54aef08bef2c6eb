"""Attacks on the cohort count API, run through real HTTP against the real app.

Each attack states the attacker's goal, runs it with the attacker's best strategy we know
within the researcher's budget and measures the advantage over many trials (one fresh
researcher per trial). The helpers here are the attacker's tools: an HTTP client, a
researcher factory, and the likelihood of a released number under the published mechanism
(Laplace noise of the scale the answer states, rounding, suppression below the floor).
"""

from __future__ import annotations

import itertools
import json
import math
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from typing import Any, TypeVar

from catalogue.model.identity import SYSTEM, Role, User
from catalogue.privacy.disclosure import DisclosurePolicy
from catalogue.runtime import Runtime
from tests.integration.cohorts import Staged

T = TypeVar("T")
R = TypeVar("R")
COUNT = "/api/v1/cohorts/count"
ROUNDING = 10  # the published defaults of the disclosure policy (checked by the attacks)
FLOOR = 10
DEFAULTS = DisclosurePolicy()
EPSILON = DEFAULTS.epsilon  # charged per new question
QUESTIONS = round(DEFAULTS.budget / EPSILON)  # a researcher's questions per window
ORG_QUESTIONS = round(DEFAULTS.organisation_budget / EPSILON)  # an organisation's
FIGURES: list[str] = []  # measured figures, printed in the terminal summary
_names = itertools.count()
_lock = threading.Lock()


# -- HTTP ---------------------------------------------------------------------------------------
@dataclass
class Reply:
    status: int
    body: Any
    raw: bytes
    headers: dict[str, str]
    seconds: float


def call(base: str, method: str, path: str, body: Any = None, token: str | None = None,
         *, data: bytes | None = None, content_type: str | None = "application/json",
         timeout: float = 60.0) -> Reply:
    """One HTTP request on a new connection; every status is returned, none raised.
    ``data`` sends raw bytes instead of ``body`` as JSON (with ``content_type=None`` urllib
    labels a body as a form)."""
    headers = {"Accept": "application/json"}
    if body is not None and data is None:
        data = json.dumps(body).encode()
    if data is not None and content_type is not None:
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=data, method=method, headers=headers)
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            raw, status, hdrs = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw, status, hdrs = err.read(), err.code, dict(err.headers)
    seconds = time.perf_counter() - started
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = None
    return Reply(status, parsed, raw, {k.lower(): v for k, v in hdrs.items()}, seconds)


@dataclass
class Api:
    """The served app (``base``) and its runtime (to create accounts, as an admin would)."""

    base: str
    rt: Runtime

    def account(self, role: Role, organisation: str | None = None) -> tuple[str, str]:
        """A new account of ``role``: (username, bearer token)."""
        with _lock:
            username = f"{role.value}-{next(_names)}"
        self.rt.identities.create_user(SYSTEM, User("", username, role, organisation))
        return username, self.rt.identities.issue_token(SYSTEM, username).secret

    def researcher(self, organisation: str | None = None) -> str:
        """A new researcher's bearer token."""
        return self.account(Role.RESEARCHER, organisation)[1]

    def count(self, token: str | None, body: Any) -> Reply:
        return call(self.base, "POST", COUNT, body, token)


@dataclass
class Attacker:
    """One researcher spending their own budget."""

    api: Api
    token: str
    asked: int = 0

    def ask(self, criteria: Any, group_by: Sequence[str] = ()) -> dict[str, Any]:
        """An answered question (fails the test on anything but 200)."""
        body = {"criteria": criteria, "group_by": list(group_by)}
        reply = self.api.count(self.token, body)
        assert reply.status == 200, (reply.status, reply.raw[:500])
        self.asked += 1
        answer: dict[str, Any] = reply.body
        return answer

    def ask_new(self, criteria: Any, group_by: Sequence[str] = ()) -> dict[str, Any]:
        """An answered question that was charged (a new canonical question)."""
        answer = self.ask(criteria, group_by)
        assert answer["parameters"]["charged"] > 0, answer["question"]
        return answer

    def refused(self, criteria: Any, group_by: Sequence[str] = ()) -> None:
        """The budget is spent: the next new question is refused with 429 and no numbers."""
        reply = self.api.count(self.token, {"criteria": criteria, "group_by": list(group_by)})
        assert reply.status == 429, (reply.status, reply.raw[:500])
        assert set(reply.body) == {"error"} and "budget" in reply.body["error"]["message"]


def run_trials(trial: Callable[[T], R], items: Sequence[T], workers: int = 6) -> list[R]:
    """Run independent trials (each its own researcher) concurrently."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(trial, items))


# -- the attacker's model of the published mechanism ------------------------------------------
def laplace_cdf(x: float, scale: float) -> float:
    return 0.5 * math.exp(x / scale) if x < 0 else 1.0 - 0.5 * math.exp(-x / scale)


def release_probability(pv: dict[str, Any], true: float, scale: float) -> float:
    """P(the mechanism releases ``pv`` | the true count): Laplace noise, rounding to
    ``ROUNDING``, suppression when the noisy value is below ``FLOOR``."""
    if pv["suppressed"]:
        return laplace_cdf(FLOOR - true, scale)
    value = pv["value"]
    low, high = max(value - ROUNDING / 2, FLOOR), value + ROUNDING / 2
    return max(laplace_cdf(high - true, scale) - laplace_cdf(low - true, scale), 0.0)


Observation = tuple[dict[str, Any], float]  # (released value, noise scale)


def likelihood(observations: Iterable[Observation], true: float) -> float:
    out = 1.0
    for pv, scale in observations:
        out *= release_probability(pv, true, scale)
    return out


def membership_llr(with_target: Sequence[Observation], without: Sequence[Observation],
                   prior: Iterable[int], shift: float = 1.0) -> float:
    """log P(answers | target in) − log P(answers | target out), the unknown count of the
    others (the same in both kinds of question) marginalised over a uniform ``prior``.
    ``shift`` is what the target adds to the count (1 subject; up to the cap in studies)."""
    totals = [0.0, 0.0]
    for c in prior:
        base = likelihood(without, c)
        if base == 0.0:
            continue
        for member in (0, 1):
            totals[member] += base * likelihood(with_target, c + member * shift)
    return safe_log(totals[1]) - safe_log(totals[0])


def safe_log(x: float) -> float:
    """log x, with an impossible event as a very large negative number."""
    return math.log(x) if x > 0 else -1e9


def guess(llr: float, rng: random.Random) -> bool:
    """The Bayes guess (equal priors): in when the evidence favours it; a coin on a tie."""
    if abs(llr) < 1e-12:
        return rng.random() < 0.5
    return llr > 0


@dataclass
class Score:
    """Guessing accuracy over trials; for likelihood-ratio guesses also the accuracy the
    attacker expects from its own posteriors (the same quantity with far less sampling
    noise, as far as its model of the others' counts is right)."""

    name: str
    correct: int = 0
    trials: int = 0
    confidence: float = 0.0
    judged: int = 0

    def add(self, right: bool) -> None:
        self.correct += int(right)
        self.trials += 1

    def judge(self, llr: float, truth: bool, key: str) -> None:
        """Score the Bayes guess from ``llr`` (ties broken by a coin seeded with ``key``)."""
        self.add(guess(llr, random.Random(key)) == truth)
        self.confidence += 1.0 / (1.0 + math.exp(-min(abs(llr), 700.0)))
        self.judged += 1

    @property
    def accuracy(self) -> float:
        return self.correct / self.trials if self.trials else 0.0

    def within(self, bound: float) -> bool:
        """Report, and judge the attack against ``bound``: the accuracy the attacker's own
        posteriors give (when it guessed by likelihood ratio) must not exceed it, and the
        observed accuracy must not be significantly above it (the lower end of its 95% Wilson
        interval). With 100 trials the observed accuracy alone has a standard error of 0.05:
        an attack expected at 0.56 would pass or fail by the luck of the secret (any change of
        secret or of how noise is drawn is a new sample), while a mechanism that leaks (no
        noise, or a third of it: checked) is still caught by the expected figure."""
        self.report()
        low, _high = wilson(self.correct, self.trials)
        expected_ok = not self.judged or self.confidence / self.judged <= bound
        return expected_ok and low <= bound

    def report(self) -> float:
        """Print the figure (and keep it for the terminal summary); return the accuracy."""
        low, high = wilson(self.correct, self.trials)
        expected = (f"; the attacker's posteriors expect {self.confidence / self.judged:.3f}"
                    if self.judged else "")
        record(f"{self.name}: accuracy {self.accuracy:.3f} ({self.correct}/{self.trials}, "
               f"95% CI {low:.2f}-{high:.2f}{expected})")
        return self.accuracy


def record(line: str) -> None:
    print(line)
    with _lock:
        FIGURES.append(line)


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


# -- staging ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Study:
    modality: str
    body_part: str
    manufacturer: str
    age: int
    year: int


def insert_subject(conn: Any, dataset_id: str, key: str, sex: str, birth_year: int,
                   conditions: Sequence[str], studies: Sequence[Study]) -> str:
    """One subject with its imaging studies and coded conditions (plain SQL, as a harvest
    writes them); returns its id."""
    row = conn.execute(
        "INSERT INTO subjects (dataset_id, subject_key, sex, birth_year) VALUES (%s, %s, %s, %s) "
        "RETURNING id", (dataset_id, key, sex, birth_year)).fetchone()
    sid = str(row["id"])
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO imaging_studies (subject_id, study_key, modalities, body_parts, "
            "manufacturer, study_month, age_at_study) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [(sid, f"{key}-{n}", [s.modality], [s.body_part], s.manufacturer,
              date(s.year, 1 + n % 12, 1), s.age) for n, s in enumerate(studies)])
        cur.executemany(
            "INSERT INTO conditions (subject_id, system, code, concept, condition_key) "
            "VALUES (%s, %s, %s, %s, %s)",
            [(sid, *concept.split(":"), concept, f"c{n}") for n, concept in enumerate(conditions)])
    return sid


def decoy(tag: str, n: int) -> dict[str, Any]:
    """A condition that excludes nobody but makes a new canonical question (fresh noise, new
    charge): the averaging attacker's way to ask "the same" question again."""
    return {"none_of": [{"manufacturer": [f"Decoy-{tag}-{n}"]}]}


@dataclass
class World:
    """The staged population (``tests.integration.cohorts.stage``), served over HTTP."""

    rt: Runtime
    api: Api
    staged: Staged
