"""The cohort count API: researchers only, budgets (researcher and organisation) with 429 when
exhausted, free repeats, admin inspection and reset, the audit log, the CLI command."""

from __future__ import annotations

import dataclasses
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from opensearchpy import OpenSearch

from catalogue.cli import main
from catalogue.config import Config
from catalogue.errors import SearchUnavailable, TooManyRequests
from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.search.backends.opensearch_backend import OpenSearchBackend
from catalogue.search.backends.reads import ReadPool
from catalogue.services.cohorts import CohortService
from catalogue.store.cohorts import CohortLedger
from catalogue.testing.app_server import serve
from tests.conftest import TEST_SECRET
from tests.integration.cohorts import LUNG, stage


def _tokens(rt: Runtime) -> dict[str, str]:
    ids = rt.identities
    ids.create_organisation(SYSTEM, Organisation("uni-x", "University X", "DE"))
    users = {"admin": User("", "ada", Role.ADMIN),
             "provider": User("", "pia", Role.PROVIDER, "prov-a"),
             "r1": User("", "res-1", Role.RESEARCHER, "uni-x"),
             "r2": User("", "res-2", Role.RESEARCHER, "uni-x"),
             "r3": User("", "res-3", Role.RESEARCHER, "uni-x"),
             "r4": User("", "res-4", Role.RESEARCHER, "uni-x"),
             "solo": User("", "res-solo", Role.RESEARCHER)}
    out = {}
    for key, user in users.items():
        ids.create_user(SYSTEM, user)
        out[key] = ids.issue_token(SYSTEM, user.username).secret
    return out


def _post(client: Any, token: str | None, body: Any) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post("/api/v1/cohorts/count", json=body, headers=headers)


def _question(n: int) -> dict[str, Any]:
    """Distinct questions (different age ranges) for n < 75."""
    low = 5 * (n % 25)
    return {"criteria": {"all_of": [{"condition": [LUNG]},
                                    {"age": {"gte": low, "lte": low + 5 * (1 + n // 25)}}]}}


def test_count_api_roles_budgets_repeats_and_audit(runtime: Runtime, client: Any) -> None:
    stage(runtime)
    tokens = _tokens(runtime)
    body = {"criteria": {"all_of": [{"condition": [LUNG]}, {"study": {
        "modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}}]},
        "group_by": ["dataset"]}
    assert _post(client, None, body).status_code == 401
    refused = _post(client, tokens["provider"], body)
    assert refused.status_code == 403 and "researcher" in refused.get_json()["error"]["message"]
    assert _post(client, tokens["admin"], body).status_code == 403

    first = _post(client, tokens["r1"], body)
    assert first.status_code == 200, first.get_json()
    answer = first.get_json()
    assert answer["parameters"]["charged"] == 0.2 and answer["parameters"]["repeated"] is False
    assert answer["budget"]["researcher"] == {"limit": 2.0, "spent": 0.2, "remaining": 1.8,
                                              "window_days": 30}
    assert answer["budget"]["organisation"]["spent"] == 0.2
    assert len(answer["groups"]) == 5 and {"dataset", "subjects", "studies"} == set(
        answer["groups"][0])
    # the same question, reworded, by another researcher of the organisation: same numbers,
    # nothing charged
    reworded = {"group_by": "dataset", "criteria": {"all_of": [
        {"study": {"age": {"gte": 54, "lte": 74}, "body_part": ["CHEST"], "modality": ["CT"]}},
        {"condition": {"concepts": [LUNG], "descendants": True}}]}}
    again = _post(client, tokens["r2"], reworded).get_json()
    assert again["total"] == answer["total"] and again["groups"] == answer["groups"]
    assert again["parameters"]["charged"] == 0.0 and again["parameters"]["repeated"] is True
    assert again["budget"]["organisation"]["spent"] == 0.2

    # the researcher's budget: 10 questions of ε 0.2, then 429 with a clear message
    for n in range(9):
        assert _post(client, tokens["r1"], _question(n)).status_code == 200
    exhausted = _post(client, tokens["r1"], _question(9))
    assert exhausted.status_code == 429
    message = exhausted.get_json()["error"]["message"]
    assert "researcher privacy budget is exhausted" in message and "0.00 of 2.00" in message
    assert "value" not in json.dumps(exhausted.get_json())
    # a question already answered on this data version is still free
    assert _post(client, tokens["r1"], body).status_code == 200
    # the organisation budget (4.0: 20 questions) is shared by its researchers
    answered = 10
    for n in range(10, 40):
        reply = _post(client, tokens["r2" if n < 20 else "r3" if n < 30 else "r4"],
                      _question(n))
        if reply.status_code == 429:
            assert "organisation privacy budget" in reply.get_json()["error"]["message"]
            break
        assert reply.status_code == 200
        answered += 1
    assert answered == 20
    # a researcher without an organisation is not held by it
    assert _post(client, tokens["solo"], _question(50)).status_code == 200

    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    budgets = client.get("/api/v1/cohorts/budgets", headers=admin).get_json()
    by_user = {b["username"]: b for b in budgets}
    assert by_user["res-1"]["researcher"]["remaining"] == 0.0
    assert by_user["res-1"]["organisation"]["remaining"] == 0.0
    assert client.get("/api/v1/cohorts/budgets",
                      headers={"Authorization": f"Bearer {tokens['r1']}"}).status_code == 403
    own = client.get("/api/v1/cohorts/budget",
                     headers={"Authorization": f"Bearer {tokens['r1']}"}).get_json()
    assert own["researcher"]["remaining"] == 0.0
    # admins reset the organisation and the researcher; both are audited
    for target in ({"organisation_id": "uni-x"}, {"username": "res-1", "reason": "new project"}):
        reset = client.post("/api/v1/cohorts/budgets/reset", json=target, headers=admin)
        assert reset.status_code == 200, reset.get_json()
    assert client.post("/api/v1/cohorts/budgets/reset", json={"username": "nobody"},
                       headers=admin).status_code == 404
    assert _post(client, tokens["r1"], _question(60)).status_code == 200

    invalid = _post(client, tokens["r1"], {"criteria": {"modality": ["XRAY"]}})
    assert invalid.status_code == 400 and "XRAY" in invalid.get_json()["error"]["message"]
    not_json = client.post("/api/v1/cohorts/count", data="criteria=x",
                           headers={"Authorization": f"Bearer {tokens['r1']}",
                                    "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415
    deep = client.post("/api/v1/cohorts/count", data="[" * 100_000 + "]" * 100_000,
                       headers={"Authorization": f"Bearer {tokens['r1']}",
                                "Content-Type": "application/json"})
    assert deep.status_code == 400 and "nested too deeply" in deep.get_json()["error"]["message"]
    log = client.get("/api/v1/cohorts/queries?limit=1000", headers=admin).get_json()
    outcomes = [row["outcome"] for row in log]
    assert outcomes.count("refused") == 2 and outcomes.count("invalid") == 3
    assert outcomes.count("repeated") == 2
    first_row = log[-1]
    assert first_row["username"] == "res-1" and first_row["epsilon"] == 0.2
    assert first_row["question"]["group_by"] == ["dataset"] and first_row["cells"] == 6
    assert "subjects" not in json.dumps(log)  # questions and counts of cells, never numbers
    only = client.get("/api/v1/cohorts/queries?username=res-solo", headers=admin).get_json()
    assert [row["username"] for row in only] == ["res-solo"]
    with runtime.database.transaction() as conn:
        resets = conn.execute("SELECT actor, target_type, target_id FROM audit_log "
                              "WHERE action = 'cohort.budget_reset' ORDER BY id").fetchall()
    assert [(r["actor"], r["target_type"], r["target_id"]) for r in resets] == [
        ("ada", "organisation", "uni-x"), ("ada", "user", "res-1")]


def test_cli_count_charges_the_named_researcher(runtime: Runtime, db_url: str,
                                               tmp_path: Path) -> None:
    stage(runtime)
    runtime.identities.create_user(SYSTEM, User("", "cli-res", Role.RESEARCHER))
    question = tmp_path / "q.json"
    question.write_text(json.dumps({"criteria": {"condition": [LUNG]}, "group_by": ["sex"]}))
    env = {"CATALOGUE_DATABASE_URL": db_url, "CATALOGUE_DATA_DIR": runtime.config.data_dir,
           "CATALOGUE_SECRET_KEY": TEST_SECRET, "CATALOGUE_ENV": "test"}
    runtime.close()  # one writer per tantivy folder: the CLI opens it now
    result = CliRunner().invoke(main, ["cohorts", "count", str(question), "--as", "cli-res"],
                                env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("total: subjects ")
    assert "budget left 1.8 of 2.0" in result.output
    result = CliRunner().invoke(main, ["cohorts", "count", str(question), "--as", "cli-res",
                                       "--json"], env=env, catch_exceptions=False)
    answer = json.loads(result.output)
    assert answer["parameters"]["repeated"] is True and answer["group_by"] == ["sex"]
    result = CliRunner().invoke(main, ["cohorts", "queries"], env=env, catch_exceptions=False)
    assert result.output.count("cli-res") == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"criteria": {"sex": ["woman"]}}')
    result = CliRunner().invoke(main, ["cohorts", "count", str(bad), "--as", "cli-res"], env=env)
    assert result.exit_code != 0 and "unknown value 'woman'" in result.output


def test_concurrent_questions_never_spend_beyond_the_budgets(runtime: Runtime) -> None:
    """Four researchers of one organisation ask 32 distinct questions at once, eight at a time:
    the organisation's budget (4.0, 20 questions of ε 0.2) answers exactly 20 and refuses the
    rest, and no researcher gets more than their own 10 (the budget decisions of a researcher
    and of an organisation are serialised: the locks are held before the spending is read)."""
    stage(runtime)
    tokens = _tokens(runtime)
    who = [runtime.identities.authenticate(tokens[f"r{n}"]) for n in (1, 2, 3, 4)]

    def ask(n: int) -> tuple[str, int]:
        identity = who[n % 4]
        try:
            runtime.cohorts.count(identity, _question(n))
        except TooManyRequests:
            return identity.username, 429
        return identity.username, 200

    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(ask, range(32)))
    answered = [user for user, status in replies if status == 200]
    assert len(answered) == 20 and sum(status == 429 for _, status in replies) == 12
    assert max(answered.count(u.username) for u in who) <= 10
    with runtime.database.transaction() as conn:
        spent = conn.execute("SELECT round(sum(epsilon)::numeric, 6) AS e, count(*) AS n "
                             "FROM cohort_queries WHERE organisation_id = 'uni-x' "
                             "AND outcome = 'answered'").fetchone()
    assert float(spent["e"]) == 4.0 and spent["n"] == 20


def test_a_question_the_engine_cannot_answer_is_settled_failed_and_not_charged(
        opensearch_config: Config) -> None:
    """The budget is charged while the engine counts; when the engine then does not answer
    (here: every node unreachable), the question is a 503, its ledger entry is settled
    ``failed``, and the researcher's budget is as before."""
    rt = Runtime(opensearch_config).start()
    try:
        stage(rt)
        rt.identities.create_user(SYSTEM, User("", "res-f", Role.RESEARCHER))
        who = rt.identities.authenticate(rt.identities.issue_token(SYSTEM, "res-f").secret)
        answered = rt.cohorts.count(who, _question(1))
        assert answered["budget"]["researcher"]["spent"] == 0.2
        assert isinstance(rt.search, OpenSearchBackend)
        working, reads = rt.search.client, rt.search._reads
        rt.search.client = OpenSearch(hosts=["http://127.0.0.1:9"], max_retries=0, timeout=2)
        rt.search._reads = ReadPool(["http://127.0.0.1:9"], timeout=2)  # searches and counts
        try:
            with pytest.raises(SearchUnavailable):
                rt.cohorts.count(who, _question(2))
        finally:
            rt.search.client, rt.search._reads = working, reads
        with rt.database.transaction() as conn:
            rows = conn.execute("SELECT outcome, epsilon, released, message FROM cohort_queries "
                                "WHERE username = 'res-f' ORDER BY id").fetchall()
        assert [(r["outcome"], r["epsilon"]) for r in rows] == [("answered", 0.2),
                                                                ("failed", 0.0)]
        assert rows[0]["released"] > 0 and rows[1]["released"] == 0
        assert "did not answer" in rows[1]["message"]
        assert rt.cohorts.budget(who)["researcher"]["spent"] == 0.2
        again = rt.cohorts.count(who, _question(2))  # the engine is back: asked and charged
        assert again["parameters"]["charged"] == 0.2 and not again["parameters"]["repeated"]
        # refused for its budget, then not answered by the engine: it stays refused
        rt.cohorts.policy = dataclasses.replace(rt.cohorts.policy, budget=0.4)
        rt.search._reads = ReadPool(["http://127.0.0.1:9"], timeout=2)
        try:
            with pytest.raises(SearchUnavailable):
                rt.cohorts.count(who, _question(3))
        finally:
            rt.search._reads = reads
        with rt.database.transaction() as conn:
            last = conn.execute("SELECT outcome, epsilon FROM cohort_queries WHERE username = "
                                "'res-f' ORDER BY id DESC LIMIT 1").fetchone()
        assert (last["outcome"], last["epsilon"]) == ("refused", 0.0)
    finally:
        rt.close()


def test_a_pending_entry_is_charged_but_is_not_an_answer_to_repeat_for_free(
        runtime: Runtime) -> None:
    """While its counts are being made, a question's entry is ``pending``: its ε counts against
    the budgets, but asking the same question meanwhile is not a free repeat (if the first
    then failed, the second would have been answered uncharged). Settled ``answered``, it is."""
    runtime.identities.create_user(SYSTEM, User("", "res-p", Role.RESEARCHER))
    who = runtime.identities.authenticate(runtime.identities.issue_token(SYSTEM, "res-p").secret)
    window = timedelta(days=30)
    with runtime.database.transaction() as conn:
        ledger = CohortLedger(conn)
        entry = ledger.record(who, "pending", question_hash="q1", data_version=3,
                              noise_key="k", cells=2, epsilon=0.2).fetchone()["id"]
        assert ledger.locked_standing(who, "q1", 3, "k", window) == (False, 0.2, 0.0)
        ledger.settle(entry, "answered", released=4)
        assert ledger.locked_standing(who, "q1", 3, "k", window) == (True, 0.2, 0.0)
        assert ledger.locked_standing(who, "q1", 4, "k", window)[0] is False  # new data
        failed = ledger.record(who, "pending", question_hash="q2", data_version=3,
                               noise_key="k", epsilon=0.2).fetchone()["id"]
        ledger.settle(failed, "failed", message="the search engine did not answer")
        assert ledger.locked_standing(who, "q2", 3, "k", window) == (False, 0.2, 0.0)
        row = conn.execute("SELECT outcome, released FROM cohort_queries WHERE id = %s",
                           (entry,)).fetchone()
    assert (row["outcome"], row["released"]) == ("answered", 4)


def test_an_answer_is_settled_after_it_is_sent_and_its_repeat_waits_for_that(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Over real HTTP (waitress): the ledger entry of an answered question is charged before
    the answer goes out and settled once it has (here the settlement is slowed down, so the
    client holds the answer while the entry is still ``pending``). The same question asked
    at once by a colleague, on another connection, waits for that settlement and is a free
    repeat, not a second charge; asked by a researcher of no organisation, it does not wait."""
    stage(runtime)
    tokens = _tokens(runtime)
    settle = CohortService._settle
    settling = threading.Event()

    def slow(self: CohortService, *args: Any, **kwargs: Any) -> None:
        settling.set()
        time.sleep(0.5)
        settle(self, *args, **kwargs)

    monkeypatch.setattr(CohortService, "_settle", slow)

    def outcomes() -> list[str]:
        with runtime.database.transaction() as conn:
            return [r["outcome"] for r in conn.execute(
                "SELECT outcome FROM cohort_queries ORDER BY id")]

    body = json.dumps({"criteria": {"condition": [LUNG]}, "group_by": ["dataset"]})
    with serve(runtime, threads=4) as base:
        port = int(base.rsplit(":", 1)[1])

        def ask(token: str) -> dict[str, Any]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("POST", "/api/v1/cohorts/count", body,
                         {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
            response = conn.getresponse()
            assert response.status == 200
            answer: dict[str, Any] = json.loads(response.read())
            conn.close()
            return answer

        first = ask(tokens["r1"])
        assert settling.wait(5)
        assert outcomes() == ["pending"]  # answered, and charged, not settled yet
        assert first["parameters"]["charged"] == 0.2
        # a researcher outside the organisation is not held up (the wait would tell them that
        # someone asked this), and pays: the first entry is still being settled meanwhile
        solo = ask(tokens["solo"])
        assert solo["parameters"]["charged"] == 0.2 and not solo["parameters"]["repeated"]
        assert outcomes() == ["pending", "pending"]
        again = ask(tokens["r2"])  # a colleague: waits for the settlement
        assert again["parameters"] == {**first["parameters"], "charged": 0.0, "repeated": True}
        assert again["groups"] == first["groups"]
        deadline = time.monotonic() + 5
        while outcomes() != ["answered", "answered", "repeated"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outcomes() == ["answered", "answered", "repeated"]
    assert runtime.cohorts.budget(runtime.identities.authenticate(tokens["r1"])
                                  )["organisation"]["spent"] == 0.2


def test_an_answer_whose_response_is_never_closed_is_settled_by_its_repeat_or_at_shutdown(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that never says the answer was sent (its response is not closed): the same
    question asked again waits ``SETTLE_WAIT``, then settles the first entry itself and is a
    free repeat; what is still open when the service closes is settled then. Each entry is
    settled once."""
    import catalogue.services.cohorts as service

    monkeypatch.setattr(service, "SETTLE_WAIT", 0.3)
    stage(runtime)
    tokens = _tokens(runtime)
    r1, r2 = (runtime.identities.authenticate(tokens[k]) for k in ("r1", "r2"))
    settled: list[int] = []
    settle = CohortService._settle

    def counted(self: CohortService, entry: int, *args: Any, **kwargs: Any) -> None:
        settled.append(entry)
        settle(self, entry, *args, **kwargs)

    monkeypatch.setattr(CohortService, "_settle", counted)
    question = {"criteria": {"condition": [LUNG]}, "group_by": ["dataset"]}
    _answer, unsent = runtime.cohorts.answer(r1, question)  # never settled by its caller
    started = time.monotonic()
    again = runtime.cohorts.count(r2, question)
    assert time.monotonic() - started >= 0.3
    assert again["parameters"]["repeated"] is True and again["parameters"]["charged"] == 0.0
    unsent()  # too late: it ran already
    runtime.cohorts.answer(r1, _question(7))  # left open
    runtime.cohorts.close()
    with runtime.database.transaction() as conn:
        rows = conn.execute("SELECT id, outcome FROM cohort_queries ORDER BY id").fetchall()
    assert [r["outcome"] for r in rows] == ["answered", "repeated", "answered"]
    assert sorted(settled) == [r["id"] for r in rows]  # each once
