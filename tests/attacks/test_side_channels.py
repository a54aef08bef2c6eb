"""Side channels: a suppressed answer must look like a released one from the outside — the
same status, the same JSON keys at every level, the same headers, the same time."""

from __future__ import annotations

import statistics
from typing import Any

from tests.attacks import Api, Reply, World, decoy, record


def shape(value: Any) -> Any:
    """The keys at every level, without the values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return "leaf"


def numbers(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [answer["total"]["subjects"], answer["total"]["studies"],
            *(g[f] for g in answer["groups"] for f in ("subjects", "studies"))]


def ask_all(api: Api, bodies: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], Reply]]:
    """Ask each body once (a fresh researcher per 10 questions); (token, body, reply)."""
    out = []
    token = ""
    for n, body in enumerate(bodies):
        if n % 10 == 0:
            token = api.researcher()
        reply = api.count(token, body)
        assert reply.status == 200, reply.raw
        out.append((token, body, reply))
    return out


def test_suppressed_and_released_answers_look_and_time_the_same(world: World) -> None:
    """Goal: tell "fewer than 10" from a released count without reading the numbers — by the
    status, the JSON keys, the headers, or the response time (median of 90 interleaved
    repeats of 30 suppressed-only and 30 released questions of the same shape)."""
    api = world.api
    nobody = [{"criteria": {"all_of": [{"manufacturer": ["Nobody"]}, decoy("s", i)]}}
              for i in range(80)]
    everybody = [{"criteria": {"all_of": [{"manufacturer": ["GE HealthCare"]},
                                          decoy("s", i)]}} for i in range(40)]
    asked = ask_all(api, nobody + everybody)
    suppressed = [(t, b, r) for t, b, r in asked[:80]
                  if all(n["suppressed"] for n in numbers(r.body))][:30]
    released = [(t, b, r) for t, b, r in asked[80:]
                if not any(n["suppressed"] for n in numbers(r.body))][:30]
    assert len(suppressed) == 30 and len(released) == 30

    shapes = {repr(shape(r.body)) for _, _, r in suppressed + released}
    assert len(shapes) == 1, shapes
    headers = {tuple(sorted(r.headers)) for _, _, r in suppressed + released}
    assert len(headers) == 1, headers
    grouped = api.count(api.researcher(), {"criteria": {"manufacturer": ["GE HealthCare"]},
                                           "group_by": ["dataset", "sex"]}).body
    cells = {repr(shape(g)) for g in grouped["groups"]}
    kinds = {g["subjects"]["suppressed"] for g in grouped["groups"]}
    assert kinds == {True, False} and len(cells) == 1  # mixed cells, one shape

    timings: dict[str, list[float]] = {"suppressed": [], "released": []}
    for _ in range(3):  # interleaved repeats (free): the same code path, the same load
        for (t1, b1, _), (t2, b2, _) in zip(suppressed, released, strict=True):
            for kind, token, body in (("suppressed", t1, b1), ("released", t2, b2)):
                reply = api.count(token, body)
                assert reply.status == 200 and reply.body["parameters"]["repeated"]
                timings[kind].append(reply.seconds)
    low, high = (statistics.median(timings[k]) for k in ("suppressed", "released"))
    record(f"side channel: median latency suppressed {low * 1000:.1f} ms, released "
           f"{high * 1000:.1f} ms ({len(timings['suppressed'])} each)")
    assert abs(low - high) < max(0.25 * max(low, high), 0.015)
