"""Disclosure control of cohort counts: keyed Laplace noise, rounding, suppression, budgets.

Every released number is ``true + Laplace(Δ·L/ε_f)``, rounded to ``rounding`` and suppressed
when the *noisy* value is below ``floor``:

- ``ε_f`` is the query's ε split equally over the count families it releases (subject total,
  study total, and when grouped subject cells and study cells);
- ``Δ`` is 1 for subject counts and ``study_cap`` for study counts (a subject contributes at
  most that many studies: studies ranked beyond the cap are not counted);
- ``L`` is 1 for totals and for cells of subject attributes (dataset, provider, country, sex:
  one subject is in one cell), and the number of buckets for study dimensions (modality, body
  part, age band: one subject can be in every cell), multiplied over two dimensions.

So a query costs at most ε however it is grouped (disjoint cells compose in parallel,
overlapping cells carry their bounded contribution in the noise scale).

The noise is deterministic: its uniform draw is a keyed PRF of the cell, family and scale of
that number under a question key HMAC(server secret, the data version, the canonical question)
(see :class:`Noise`). The same question gets the same
answer on every replica and after restarts, so repeating it (or rewriting it equivalently)
reveals nothing new; the true count and the matching records never enter the key, so two
different questions never share noise in a way that depends on the data (Samply Focus keys its
cache on the true count, which turns equal answers into an equality oracle).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import Any

from catalogue.errors import ConfigError


@dataclass(frozen=True)
class DisclosurePolicy:
    """Parameters of cohort disclosure control (``CATALOGUE_COHORT_*`` settings)."""

    epsilon: float = 0.2               # per query, split over the families it releases
    study_cap: int = 20                # studies counted per subject at most
    rounding: int = 10                 # released values are multiples of this
    floor: int = 10                    # noisy values below this are suppressed
    budget: float = 2.0                # ε per researcher per window (10 questions)
    organisation_budget: float = 4.0   # ε per organisation (all its researchers) per window
    window_days: int = 30
    exact: bool = False                # tests only: release true counts (never configurable)

    def __post_init__(self) -> None:
        if self.epsilon <= 0 or self.study_cap < 1 or self.floor < 0 or self.rounding < 1:
            raise ConfigError("cohort privacy: epsilon must be positive, the study cap and "
                              "rounding at least 1, the floor not negative")
        if self.budget <= 0 or self.organisation_budget <= 0 or self.window_days < 1:
            raise ConfigError("cohort privacy: budgets must be positive, the window at least "
                              "one day")

    @classmethod
    def from_config(cls, config: Any) -> DisclosurePolicy:
        return cls(epsilon=config.cohort_epsilon, study_cap=config.cohort_study_cap,
                   rounding=config.cohort_rounding, floor=config.cohort_floor,
                   budget=config.cohort_budget,
                   organisation_budget=config.cohort_organisation_budget,
                   window_days=config.cohort_window_days)


class Noise:
    """Keyed draws for the numbers of one question.

    The question key is ``HMAC-SHA256(secret, "cohort-noise\\0" + prefix)`` where the prefix
    holds the data version and the canonical question; the uniform of one number is then the
    keyed BLAKE2b (a PRF) of its suffix (the cell, family and scale) under that key. So every
    draw depends on the server secret, the data version, the canonical question and the cell,
    and on nothing else (two keyed PRFs in cascade are a PRF); the second level costs about a
    third of a full HMAC per number, which matters with a thousand cells."""

    def __init__(self, secret: str, prefix: str = "") -> None:
        self._key = hmac.digest(secret.encode(), b"cohort-noise\x00" + prefix.encode(),
                                "sha256")
        # the keyed state after the key block: each draw copies it (the same digest as a
        # keyed blake2b call, without hashing the key again)
        self._keyed = hashlib.blake2b(key=self._key, digest_size=8)

    def uniform(self, suffix: str) -> float:
        """A deterministic draw in (0, 1) (53 bits)."""
        mac = hashlib.blake2b(suffix.encode(), key=self._key, digest_size=8).digest()
        return ((int.from_bytes(mac, "big") >> 11) + 0.5) / float(1 << 53)

    def laplace(self, suffix: str, scale: float) -> float:
        """Laplace(0, scale) noise from the keyed uniform (inverse CDF)."""
        u = self.uniform(suffix) - 0.5
        return -scale * math.copysign(1.0, u) * math.log(1.0 - 2.0 * abs(u))

    def protect(self, true: int, suffix: str, scale: float,
                policy: DisclosurePolicy) -> dict[str, Any]:
        """One released number (the reference :meth:`protect_cells` is tested against)."""
        return _release(true, true + self.laplace(suffix, scale), policy)

    def protect_cells(self, trues: list[int], labels: list[bytes], suffix: bytes, scale: float,
                      policy: DisclosurePolicy) -> list[dict[str, Any]]:
        """:meth:`protect` of ``trues[i]`` with suffix ``labels[i] + suffix`` (UTF-8), inlined
        (a grouped question releases thousands of numbers). Equal answers share one dict: the
        caller only serialises them."""
        log, from_bytes, keyed = math.log, int.from_bytes, self._keyed.copy
        rounding, floor, exact = policy.rounding, policy.floor, policy.exact
        hidden = {"value": None, "suppressed": True, "display": f"<{floor}"}
        made: dict[int, dict[str, Any]] = {}
        out: list[dict[str, Any]] = []
        append = out.append
        for true, label in zip(trues, labels, strict=True):
            h = keyed()
            h.update(label)
            h.update(suffix)
            mac = h.digest()
            u = ((from_bytes(mac, "big") >> 11) + 0.5) / 9007199254740992.0 - 0.5
            noisy = true + (-scale if u >= 0 else scale) * log(1.0 - 2.0 * abs(u))
            if exact:
                append({"value": true, "suppressed": False, "display": str(true)})
            elif noisy < floor:
                append(hidden)
            else:
                value = max(round(noisy / rounding) * rounding, floor)
                shown = made.get(value)
                if shown is None:
                    shown = made[value] = {"value": value, "suppressed": False,
                                           "display": str(value)}
                append(shown)
        return out


def uniform(secret: str, key: str) -> float:
    return Noise(secret).uniform(key)


def laplace(secret: str, key: str, scale: float) -> float:
    return Noise(secret).laplace(key, scale)


def protect(true: int, scale: float, key: str, secret: str,
            policy: DisclosurePolicy) -> dict[str, Any]:
    """One released number: ``{"value", "suppressed", "display"}`` (the same keys always).

    Noise, rounding and suppression take the same steps whatever the count, so suppressed and
    released values cost the same time."""
    return _release(true, true + laplace(secret, key, scale), policy)


def _release(true: int, noisy: float, policy: DisclosurePolicy) -> dict[str, Any]:
    """Round after noise; suppress below the floor, decided on the noisy value."""
    rounded = round(noisy / policy.rounding) * policy.rounding
    if policy.exact:
        return {"value": true, "suppressed": False, "display": str(true)}
    if noisy < policy.floor:
        return {"value": None, "suppressed": True, "display": f"<{policy.floor}"}
    value = max(rounded, policy.floor)
    return {"value": value, "suppressed": False, "display": str(value)}
