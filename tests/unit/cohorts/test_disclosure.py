"""Keyed Laplace noise, rounding and suppression of released counts."""

from __future__ import annotations

import statistics

import pytest

from catalogue.errors import ConfigError
from catalogue.privacy.disclosure import DisclosurePolicy, laplace, protect, uniform

POLICY = DisclosurePolicy()
EXACT = DisclosurePolicy(exact=True)


def test_noise_is_deterministic_per_key_and_independent_across_keys() -> None:
    assert laplace("s3cret", "q1", 2.0) == laplace("s3cret", "q1", 2.0)
    draws = [laplace("s3cret", f"q{i}", 2.0) for i in range(20_000)]
    assert len(set(draws)) == len(draws)
    # Laplace(0, 2): mean 0, variance 2 * 2^2 = 8, median |x| = 2 ln 2
    assert abs(statistics.fmean(draws)) < 0.1
    assert 7.4 < statistics.pvariance(draws) < 8.6
    assert 1.3 < statistics.median(abs(d) for d in draws) < 1.47
    # another secret, another noise
    assert laplace("other", "q1", 2.0) != laplace("s3cret", "q1", 2.0)
    assert all(0.0 < uniform("s", str(i)) < 1.0 for i in range(1000))


def test_released_values_are_rounded_and_suppressed_on_the_noisy_value() -> None:
    released = [protect(true, 2.0, f"k{i}", "s", POLICY) for i, true in
                enumerate([0, 3, 9, 10, 57, 1234] * 200)]
    for value in released:
        assert set(value) == {"value", "suppressed", "display"}  # one shape for every answer
        if value["suppressed"]:
            assert value["value"] is None and value["display"] == "<10"
        else:
            assert value["value"] % 10 == 0 and value["value"] >= 10
            assert value["display"] == str(value["value"])
    zeros = [protect(0, 2.0, f"z{i}", "s", POLICY) for i in range(2000)]
    threes = [protect(3, 2.0, f"t{i}", "s", POLICY) for i in range(2000)]
    # zero looks like a small count: suppressed almost always, both
    assert sum(z["suppressed"] for z in zeros) > 1990
    assert sum(t["suppressed"] for t in threes) > 1900
    # large counts stay useful: within a rounding step or two
    big = [protect(1234, 2.0, f"b{i}", "s", POLICY)["value"] for i in range(500)]
    assert all(abs(b - 1234) <= 30 for b in big)


def test_the_exact_policy_is_for_tests_and_invalid_parameters_are_refused() -> None:
    exact = DisclosurePolicy(exact=True)
    assert protect(3, 2.0, "k", "s", exact) == {"value": 3, "suppressed": False, "display": "3"}
    with pytest.raises(ConfigError):
        DisclosurePolicy(epsilon=0)
    with pytest.raises(ConfigError):
        DisclosurePolicy(rounding=0)
    with pytest.raises(ConfigError):
        DisclosurePolicy(window_days=0)


def test_the_batch_release_is_the_single_release() -> None:
    from catalogue.privacy.disclosure import Noise

    noise = Noise("s", "v1|q|")
    trues = [(0, 0), (5, 40), (12, 3), (80, 900), (1234, 20_000)] * 40
    labels = [f"dataset=cell{i}".encode() for i in range(len(trues))]
    scales = (4.0, 80.0)
    batch = noise.protect_pairs(trues, labels, scales, POLICY)
    single = [noise.protect_pair(t, label, scales, POLICY)
              for t, label in zip(trues, labels, strict=True)]
    assert batch == single
    # the draw depends on the question (the prefix), the secret and the scales, not only on
    # the cell
    assert Noise("s", "v2|q|").protect_pairs(trues, labels, scales, POLICY) != batch
    assert Noise("t", "v1|q|").protect_pairs(trues, labels, scales, POLICY) != batch
    assert noise.protect_pairs(trues, labels, (4.0, 81.0), POLICY) != batch
    exact = Noise("s", "v1|q|").protect_pairs(trues, labels, scales, EXACT)
    assert [(a["value"], b["value"]) for a, b in exact] == trues
    flat = [v for pair in batch for v in pair]
    assert any(not v["suppressed"] for v in flat) and any(v["suppressed"] for v in flat)


def test_the_two_draws_of_a_cell_are_independent_laplace_noise() -> None:
    """The subject and study counts of a cell take the two halves of one keyed output: each is
    uniform, and they are uncorrelated (the study noise tells nothing of the subject noise)."""
    from catalogue.privacy.disclosure import Noise

    noise = Noise("s", "v1|q|")
    pairs = [noise.uniforms(f"dataset={i}".encode(), (2.0, 40.0)) for i in range(20_000)]
    firsts = [a for a, _ in pairs]
    seconds = [b for _, b in pairs]
    for draws in (firsts, seconds):
        assert all(0.0 < u < 1.0 for u in draws)
        assert abs(statistics.fmean(draws) - 0.5) < 0.01
        assert abs(statistics.pvariance(draws) - 1 / 12) < 0.003
    assert abs(statistics.correlation(firsts, seconds)) < 0.03
    # released through the cell path, the study noise has its own scale: Laplace(0, 40)
    released = noise.protect_pairs([(0, 5000)] * 2000, [f"c{i}".encode() for i in range(2000)],
                                   (2.0, 40.0), POLICY)
    studies = [b["value"] - 5000 for _, b in released]
    assert 2700 < statistics.pvariance(studies) < 3700  # 2 · 40² = 3200, plus rounding's 8
