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
    trues = [0, 5, 12, 80, 1234] * 40
    suffixes = [f"cell{i}|subjects|4.0" for i in range(len(trues))]
    encoded = [s.encode() for s in suffixes]
    batch = noise.protect_cells(trues, encoded, b"", 4.0, POLICY)
    single = [noise.protect(t, s, 4.0, POLICY) for t, s in zip(trues, suffixes, strict=True)]
    assert batch == single
    # the draw depends on the question (the prefix) and the secret, not only on the cell
    assert Noise("s", "v2|q|").protect_cells(trues, encoded, b"", 4.0, POLICY) != batch
    assert Noise("t", "v1|q|").protect_cells(trues, encoded, b"", 4.0, POLICY) != batch
    labels = [f"cell{i}".encode() for i in range(len(trues))]
    assert noise.protect_cells(trues, labels, b"|subjects|4.0", 4.0, POLICY) == single
    exact = Noise("s", "v1|q|").protect_cells(trues, encoded, b"", 4.0, EXACT)
    assert [v["value"] for v in exact] == trues
    assert any(not v["suppressed"] for v in batch) and any(v["suppressed"] for v in batch)
