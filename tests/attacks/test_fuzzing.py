"""Fail-closed request handling: hundreds of malformed, mutated and hostile count requests
are refused with 400 (415 for a wrong content type) and the JSON error shape — never a 500,
never a number — and are audited; odd but valid requests get the normal answer; only
researchers may ask."""

from __future__ import annotations

import copy
import http.client
import json
import random
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from catalogue.cohorts.criteria import MAX_DEPTH, STUDY_KEYS
from catalogue.model.identity import Role
from catalogue.ontology import get_vocabulary
from tests.attacks import COUNT, Reply, World, call, record
from tests.integration.cohorts import BREAST, LUNG, Staged

KNOWN_KEYS = {"criteria", "group_by", "all_of", "any_of", "none_of", "study", "condition",
              "sex", "dataset", "provider", "country", *STUDY_KEYS, "gte", "lte", "from", "to",
              "concepts", "descendants"}
HOSTILE = ["' OR 1=1 --", "*", "CT OR MR", '"}]}', "<script>alert(1)</script>",
           "../../etc/passwd", "snomed:0", "NaN", "x" * 201, "${jndi:ldap://x/a}",
           "DROP TABLE subjects;", "modality:CT", "CT*", "\u0000", "null", "{}", "femalе",
           "XX", "ESP", "studies.manufacturer:*", "a|modalities_path=CT", ""]
UNKNOWN_KEYS = ["zz", "$where", "__proto__", "not", "AND", "limit", "total", "exact",
                "epsilon", "budget", "script", "query", "must", "filter"]
WRONG_TYPES: list[Any] = [1, 2.5, None, True, [], {}, ["x"], {"a": 1}]
VOCABULARY_KEYS = {"condition": "conditions", "modality": "modalities",
                   "body_part": "body_parts"}




# -- the mutation engine ---------------------------------------------------------------------
Path = tuple[Any, ...]


def nodes(value: Any, path: Path = ()) -> Iterator[tuple[Path, Any]]:
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from nodes(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from nodes(v, (*path, i))


def replace(root: Any, path: Path, new: Any) -> Any:
    out = copy.deepcopy(root)
    if not path:
        return new
    parent = out
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return out


def value_key(path: Path) -> str | None:
    """The criterion key a list value belongs to (``("criteria", "sex", 0)`` → ``sex``)."""
    names = [p for p in path if isinstance(p, str)]
    return names[-1] if names else None


def rejected_by_vocabulary(key: str, value: str) -> bool:
    if key in VOCABULARY_KEYS:
        return get_vocabulary(VOCABULARY_KEYS[key]).resolve(value) is None
    return key in ("sex", "dataset", "provider", "country", "group_by")


def mutations(base: dict[str, Any], rng: random.Random) -> list[tuple[str, Any]]:
    """Mutations of a valid body that are invalid whatever the base, one per operator."""
    everything = list(nodes(base))
    dicts = [(p, v) for p, v in everything if isinstance(v, dict)]
    strings = [(p, v) for p, v in everything if isinstance(v, str) and p and
               isinstance(p[-1], int)]
    numbers = [(p, v) for p, v in everything if p and p[-1] in ("gte", "lte")]
    months = [(p, v) for p, v in everything if p and p[-1] in ("from", "to")]
    groups = [(p, v) for p, v in everything if p and p[-1] in ("all_of", "any_of", "none_of")]
    criteria = [(p, v) for p, v in dicts if p and (p == ("criteria",) or isinstance(p[-1], int))
                and "group_by" not in p]
    out: list[tuple[str, Any]] = []
    path, node = rng.choice(dicts)
    key = rng.choice(UNKNOWN_KEYS)
    out.append((f"unknown key {key!r} at {path}", replace(base, path, {**node, key: 1})))
    path, _ = rng.choice(strings)
    out.append((f"wrong type at {path}", replace(base, path, rng.choice(WRONG_TYPES))))
    vocab = [(p, v) for p, v in strings if value_key(p) in (*VOCABULARY_KEYS, "sex", "dataset",
                                                            "provider", "country", "group_by")]
    if vocab:
        path, _ = rng.choice(vocab)
        bad = rng.choice([h for h in HOSTILE if rejected_by_vocabulary(str(value_key(path)), h)])
        out.append((f"hostile value {bad!r} at {path}", replace(base, path, bad)))
    if numbers:
        path, _ = rng.choice(numbers)
        bad_number = rng.choice([-1, -0.5, 151, 1e6, float("nan"), float("inf"),
                                 float("-inf"), "50", None, True, [50]])
        out.append((f"bad age {bad_number!r} at {path}", replace(base, path, bad_number)))
    if months:
        path, _ = rng.choice(months)
        bad_month = rng.choice(["2015-13", "15", 2015, "2015-1", "2015/01", "", None, "20150",
                                "2015-00", "MMXV", "2015-01-01"])
        out.append((f"bad period {bad_month!r} at {path}", replace(base, path, bad_month)))
    if groups:
        path, members = rng.choice(groups)
        out.append((f"group as an object at {path}", replace(base, path, {"x": members})))
    path, node = rng.choice(criteria)
    if len(node) == 1:
        ((old, value),) = node.items()
        new = rng.choice(["not", "xor", "$or", "and", "ALL_OF", "allOf", "must", "should",
                          f"{old}s", old.upper()])
        out.append((f"unknown operator {new!r} at {path}", replace(base, path, {new: value})))
    wrapped: Any = base.get("criteria", {"all_of": []})
    for _ in range(MAX_DEPTH + 1):
        wrapped = {"all_of": [wrapped]}
    out.append(("nested deeper than allowed", {**base, "criteria": wrapped}))
    return out


def bases(staged: Staged) -> list[dict[str, Any]]:
    return [
        {"criteria": {"all_of": [{"condition": [LUNG]}, {"study": {
            "modality": ["CT"], "body_part": ["CHEST"], "age": {"gte": 50, "lte": 70}}},
            {"country": ["ES"]}, {"period": {"from": "2012"}}]}, "group_by": ["dataset"]},
        {"criteria": {"any_of": [{"sex": ["female"]}, {"modality": ["MR", "CT"]}]},
         "group_by": ["sex", "modality"]},
        {"criteria": {"none_of": [{"condition": {"concepts": [BREAST], "descendants": False}},
                                  {"provider": ["prov-a"]}]}, "group_by": ["provider"]},
        {"criteria": {"all_of": [{"dataset": [staged.datasets[0]]}, {"period": {
            "from": "2012-03", "to": "2018"}}, {"age": {"gte": 40}}]}, "group_by": []},
    ]


def values(*given: Any) -> tuple[Any, ...]:
    return given


def handcrafted(staged: Staged) -> list[tuple[str, Any]]:
    """Invalid JSON bodies written by hand, by category."""
    ds = staged.datasets[0]
    cases: list[tuple[str, Any]] = []
    cases += [(f"body {b!r}", b) for b in values([], "criteria", 1, True, [{"criteria": {}}])]
    cases += [(f"criteria {c!r}", {"criteria": c}) for c in values(
        1, "x", [], None, True, {}, {"sex": ["female"], "dataset": [ds]})]
    cases += [(f"group_by {g!r}", {"group_by": g}) for g in values(
        1, {}, [1], [None], "age", ["manufacturer"], ["condition"], ["period"], [""],
        ["Dataset"], ["dataset", "sex", "country"], ["modality", "body_part", "age_band"],
        [["dataset"]], None)]
    cases += [(f"unknown operator {op}", {"criteria": {op: [{"sex": ["female"]}]}})
              for op in ("not", "or", "$or", "AND", "all", "must_not", "nor")]
    cases += [(f"study {s!r}", {"criteria": {"study": s}}) for s in values(
        {}, [], "CT", {"colour": ["red"]}, {"modality": "CT", "dose": 3},
        {"age": {}}, {"period": {}}, {"age": {"gte": 50, "max": 70}})]
    cases += [(f"condition {c!r}", {"criteria": {"condition": c}}) for c in values(
        {"concepts": [LUNG], "descendants": "yes"}, {"concepts": [LUNG], "extra": 1},
        {"concepts": []}, {"descendants": False}, [], [LUNG, 5], "snomed:999999999",
        ["icd10:Z99.99"], {"concepts": "snomed:0"})]
    cases += [(f"{key} {value!r}", {"criteria": {key: value}}) for key, value in (
        ("sex", ["woman"]), ("sex", ["Female"]), ("sex", ["femalе"]), ("country", ["XX"]),
        ("country", ["ESP"]), ("country", [" ES"]), ("country", ["ＥＳ"]),
        ("dataset", ["not-a-uuid"]), ("dataset", [ds.upper()]), ("provider", ["nobody"]),
        ("provider", ["PROV-A"]), ("modality", ["XRAY"]), ("body_part", ["ELBOWS"]),
        ("manufacturer", []), ("manufacturer", [1]), ("manufacturer", ["x" * 201]),
        ("manufacturer", [f"m{i}" for i in range(501)]), ("sex", {"female": True}))]
    cases += [(f"age {a!r}", {"criteria": {"age": a}}) for a in (
        {"gte": -1}, {"lte": -5}, {"gte": 151}, {"gte": 70, "lte": 50}, {"gte": "50"},
        {"gte": None}, {"gte": True}, {"gte": [50]}, {"gte": float("nan")},
        {"lte": float("inf")}, {"gte": float("-inf")}, {"gte": 1e309}, [50, 70])]
    cases += [(f"period {p!r}", {"criteria": {"period": p}}) for p in (
        {"from": "2020", "to": "2010"}, {"from": "2015-13"}, {"from": 2015}, {"to": "15"},
        {"from": "2015-1"}, {"from": "2015-01-01"}, {"since": "2015"})]
    cases.append(("65 criteria", {"criteria": {"any_of": [{"sex": ["female"]}] * 65}}))
    cases.append(("100,000 values", {"criteria": {"manufacturer": ["v"] * 100_000}}))
    hostile = {"criteria": {"all_of": [{"sex": ["female"]}, {"country": ["ES"]}]}}
    for text in HOSTILE:
        for key in ("sex", "country"):
            if rejected_by_vocabulary(key, text):
                body = replace(hostile, ("criteria", "all_of", 0 if key == "sex" else 1, key, 0),
                               text)
                cases.append((f"{key} injection {text!r}", body))
    return cases


RAW_JSON: list[tuple[str, bytes]] = [
    ("NaN literal", b'{"criteria": {"age": {"gte": NaN}}}'),
    ("Infinity literal", b'{"criteria": {"age": {"lte": Infinity}}}'),
    ("-Infinity literal", b'{"criteria": {"age": {"gte": -Infinity, "lte": 50}}}'),
    ("huge integer", b'{"criteria": {"age": {"gte": 1' + b"0" * 5000 + b"}}}"),
    ("a JSON array", b"[]"),
    ("a JSON string", b'"criteria"'),
    ("a JSON number", b"42"),
]
NOT_JSON: list[tuple[str, bytes]] = [
    ("truncated", b'{"criteria": {"sex": ["female"]'),
    ("single quotes", b"{'criteria': {}}"),
    ("bare word", b"criteria"),
    ("binary", b"\xff\xfe\x00\x01"),
    ("trailing garbage", b'{"criteria": {}} x'),
    ("empty", b""),
    ("null", b"null"),
    ("comment", b'{"criteria": {} /* x */}'),
    ("unterminated string", b'{"criteria": {"sex": ["fem'),
]
WRONG_MEDIA = ["text/plain", "application/xml", "text/json", "application/octet-stream",
               "application/jsonp", "image/png"]
FORM_MEDIA = ["application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


def post_without_content_type(base: str, token: str, data: bytes) -> Reply:
    """A POST with a body and no Content-Type header (urllib would add a form type)."""
    parts = urlsplit(base)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
    try:
        conn.request("POST", COUNT, body=data, headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        raw = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
    return Reply(resp.status, json.loads(raw) if raw else None, raw, headers, 0.0)


def check_refused(reply: Reply, status: int, what: str) -> None:
    assert reply.status == status, (what, reply.status, reply.raw[:300])
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, (what, reply.raw)
    error = reply.body["error"]
    assert error["status"] == status and isinstance(error["message"], str), what
    assert reply.headers.get("content-type", "").startswith("application/json"), what
    for leak in (b'"total"', b'"groups"', b'"value"', b'"suppressed"'):
        assert leak not in reply.raw, (what, reply.raw[:300])


def test_malformed_and_mutated_requests_fail_closed(world: World) -> None:
    """Goal: crash the parser, slip an unknown field or operator past it, inject into the
    engines, or get a count from a request the schema does not allow. ≥ 300 requests: each is
    refused with 400 (415 for a wrong content type), the JSON error shape and no number, and
    every one is in the audit log as invalid."""
    api = world.api
    username, token = api.account(Role.RESEARCHER)
    rng = random.Random(7)
    cases = handcrafted(world.staged)
    distinct = {json.dumps(body, sort_keys=True) for _, body in cases}
    for base in bases(world.staged):
        for _ in range(12):
            for what, body in mutations(base, rng):
                key = json.dumps(body, sort_keys=True)
                if key not in distinct:
                    distinct.add(key)
                    cases.append((what, body))
    statuses: dict[int, int] = {}
    for what, body in cases:
        reply = call(api.base, "POST", COUNT, token=token, data=json.dumps(body).encode())
        check_refused(reply, 400, what)
        statuses[400] = statuses.get(400, 0) + 1
    for what, data in RAW_JSON:
        check_refused(call(api.base, "POST", COUNT, token=token, data=data), 400, what)
    for what, data in NOT_JSON:
        check_refused(call(api.base, "POST", COUNT, token=token, data=data), 400, what)
    valid = json.dumps({"criteria": {"sex": ["female"]}}).encode()
    for media in WRONG_MEDIA:
        check_refused(call(api.base, "POST", COUNT, token=token, data=valid,
                           content_type=media), 415, media)
    check_refused(post_without_content_type(api.base, token, valid), 415, "no content type")
    total = len(cases) + len(RAW_JSON) + len(NOT_JSON) + len(WRONG_MEDIA) + 1
    record(f"fuzzing: {total} hostile requests, all refused (400/415), none 500, no numbers")
    assert total >= 300

    _, admin = api.account(Role.ADMIN)
    log = call(api.base, "GET", f"/api/v1/cohorts/queries?limit=1000&username={username}",
               token=admin)
    assert log.status == 200
    outcomes = [row["outcome"] for row in log.body]
    assert set(outcomes) == {"invalid"}
    assert all(row["epsilon"] == 0 and row["released"] == 0 for row in log.body)
    assert len(outcomes) == total, (len(outcomes), total)


def test_odd_but_valid_requests_get_the_normal_answer(world: World) -> None:
    """Goal: find a valid request the service mishandles — edge values, maximal sizes,
    unicode, duplicate JSON keys, free-text values that look like injections (they must
    match nothing, not everything)."""
    api = world.api
    chain: Any = {"sex": ["female"]}
    for _ in range(MAX_DEPTH):
        chain = {"all_of": [chain]}
    odd: list[tuple[str, Any, bool]] = [  # (what, body, must match no one)
        ("empty body object", {}, False),
        ("empty all_of", {"criteria": {"all_of": []}}, False),
        ("group_by as a string", {"group_by": "sex"}, False),
        ("widest ages", {"criteria": {"age": {"gte": 0, "lte": 150}}}, False),
        ("ages beyond the last band", {"criteria": {"age": {"gte": 150}}}, True),
        ("years before the index", {"criteria": {"period": {"from": "1900", "to": "1940"}}},
         True),
        ("double negation", {"criteria": {"none_of": [{"none_of": [{"sex": ["female"]}]}]}},
         False),
        ("the largest grid", {"criteria": {"sex": ["female"]},
                              "group_by": ["modality", "body_part"]}, False),
        (f"nested {MAX_DEPTH} deep", {"criteria": chain}, False),
        ("64 criteria", {"criteria": {"any_of": [{"sex": ["female"]}] * 63}}, False),
        ("500 values", {"criteria": {"manufacturer": [f"m{i}" for i in range(500)]}}, True),
        ("unicode manufacturer", {"criteria": {"manufacturer": ["Ünïcödé 医疗 🩻"]}}, True),
        ("200-character value", {"criteria": {"manufacturer": ["x" * 200]}}, True),
        ("fractional age", {"criteria": {"age": {"gte": 49.99}}}, False),
    ]
    odd += [(f"manufacturer {text!r}", {"criteria": {"manufacturer": [text]}}, True)
            for text in ("' OR 1=1 --", "*", "GE HealthCare|age_band=50", "GE*",
                         "manufacturer:*", '"}]}', "GE HealthCare OR Siemens Healthineers")]
    token = ""
    for n, (what, body, empty) in enumerate(odd):
        if n % 9 == 0:
            token = api.researcher()
        reply = api.count(token, body)
        assert reply.status == 200, (what, reply.raw[:300])
        assert set(reply.body) == {"question", "total", "group_by", "groups", "parameters",
                                   "budget"}, what
        if empty:  # true count 0: suppressed, or released as small as noise makes counts
            total = reply.body["total"]["subjects"]
            assert total["suppressed"] or total["value"] <= 80, (what, total)
    raw = b'{"criteria": {"sex": ["male"]}, "criteria": {"sex": ["female"]}}'
    duplicate = call(api.base, "POST", COUNT, token=api.researcher(), data=raw)
    assert duplicate.status == 200 and duplicate.body["question"]["criteria"] == {
        "sex": ["female"]}
    charset = call(api.base, "POST", COUNT, token=api.researcher(), data=b"{}",
                   content_type="application/json; charset=utf-8")
    assert charset.status == 200
    record(f"odd but valid: {len(odd) + 2} requests answered normally")


def test_only_researchers_may_count(world: World) -> None:
    """Goal: count without being a researcher — anonymously, with a forged token, as a data
    provider or as an administrator; and read the audit log as a researcher."""
    api = world.api
    body = {"criteria": {"sex": ["female"]}}
    check_refused(api.count(None, body), 401, "anonymous")
    check_refused(api.count("cic_0000000000000000.forged", body), 401, "forged token")
    check_refused(api.count("not-a-token", body), 401, "malformed token")
    check_refused(api.count(api.account(Role.PROVIDER, "prov-a")[1], body), 403, "provider")
    check_refused(api.count(api.account(Role.ADMIN)[1], body), 403, "admin")
    researcher = api.researcher()
    check_refused(call(api.base, "GET", "/api/v1/cohorts/queries", token=researcher), 403,
                  "audit log as a researcher")
    check_refused(call(api.base, "GET", "/api/v1/cohorts/budgets", token=researcher), 403,
                  "budgets as a researcher")


def test_every_refused_count_request_is_audited(world: World) -> None:
    """Goal: probe without leaving a trace — requests refused before or after the criteria
    parser (not JSON, wrong content type, a question the engine finds too broad) must be in
    the audit log like any other invalid question."""
    api = world.api
    username, token = api.account(Role.RESEARCHER)
    modalities = [c.id for c in get_vocabulary("modalities").concepts()]
    probes: list[tuple[str, bytes, str | None, int]] = [
        ("not JSON", b"{", "application/json", 400),
        ("JSON null", b"null", "application/json", 400),
        ("wrong content type", b'{"criteria": {}}', "text/plain", 415),
        ("too broad for the engine", json.dumps({"criteria": {"study": {
            "modality": modalities, "age": {"gte": 0}, "period": {"from": "1950"}}}}).encode(),
         "application/json", 400),
    ]
    for what, data, media, status in probes:
        check_refused(call(api.base, "POST", COUNT, token=token, data=data,
                           content_type=media), status, what)
    _, admin = api.account(Role.ADMIN)
    log = call(api.base, "GET", f"/api/v1/cohorts/queries?username={username}", token=admin)
    assert log.status == 200
    assert len(log.body) == len(probes), (
        f"{len(log.body)} of {len(probes)} refused requests audited "
        f"(probes: {[what for what, *_ in probes]}; audited: "
        f"{[row['message'] for row in log.body]})")


def test_a_form_encoded_body_is_an_unsupported_media_type(world: World) -> None:
    """Goal: confuse the body parser with a form content type (the framework reads such a
    body as a form). The answer must be 415 like any other wrong content type — not a 400
    that says the body is missing."""
    token = world.api.researcher()
    valid = json.dumps({"criteria": {"sex": ["female"]}}).encode()
    for media in FORM_MEDIA:
        check_refused(call(world.api.base, "POST", COUNT, token=token, data=valid,
                           content_type=media), 415, media)


def test_deeply_nested_json_is_refused_not_a_server_error(world: World) -> None:
    """Goal: crash the JSON parser with 50,000 nested arrays (Python's parser recurses).
    The answer must be the 400 JSON error, not a 500."""
    token = world.api.researcher()
    answers = {what: call(world.api.base, "POST", COUNT, token=token, data=data)
               for what, data in (
                   ("nested arrays", b"[" * 50_000 + b"]" * 50_000),
                   ("nested criteria objects", b'{"criteria": ' + b'{"all_of": [' * 50_000
                    + b"]}" * 50_000 + b"}"))}
    assert {what: reply.status for what, reply in answers.items()} == {
        "nested arrays": 400, "nested criteria objects": 400}
    for what, reply in answers.items():
        check_refused(reply, 400, what)
