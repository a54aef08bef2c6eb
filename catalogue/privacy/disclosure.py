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
import struct
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


#: names how :class:`Noise` derives draws; part of the noise fingerprint, so that a question
#: repeated across a change of derivation is not taken for a free repeat of its old answer
NOISE_DERIVATION = "pairs-v2"


class Noise:
    """Keyed draws for the numbers of one question.

    The question key is ``HMAC-SHA256(secret, "cohort-noise\\0" + prefix)`` where the prefix
    holds the data version and the canonical question. A cell's subject and study counts are
    released together: their two uniforms are the two halves of one 128-bit keyed BLAKE2b (a
    PRF) of the pair's noise scales (16 fixed bytes) followed by the cell's label, under that
    key. So every draw depends on the server secret, the data version, the canonical question,
    the cell, the family (which half) and the scale, and on nothing else (two keyed PRFs in
    cascade are a PRF; the halves of one PRF output are independent draws). The second level
    costs about a third of a full HMAC per cell, which matters with a thousand cells."""

    def __init__(self, secret: str, prefix: str = "") -> None:
        self._key = hmac.digest(secret.encode(), b"cohort-noise\x00" + prefix.encode(),
                                "sha256")
        # the keyed state after the key block: each draw copies it (the same digest as a
        # keyed blake2b call, without hashing the key again)
        self._keyed = hashlib.blake2b(key=self._key, digest_size=16)

    def uniforms(self, label: bytes, scales: tuple[float, float] = (1.0, 1.0)
                 ) -> tuple[float, float]:
        """The two deterministic draws in (0, 1) (53 bits each) of one cell."""
        h = self._keyed.copy()
        h.update(_scales(scales))
        h.update(label)
        first, second = _halves(h.digest())
        return (first + 0.5) / _TWO_53, (second + 0.5) / _TWO_53

    def uniform(self, label: str) -> float:
        """One deterministic draw in (0, 1) (the first of the cell's pair)."""
        return self.uniforms(label.encode())[0]

    def laplace(self, label: str, scale: float) -> float:
        """Laplace(0, scale) noise from the keyed uniform (inverse CDF)."""
        return _laplace(self.uniform(label), scale)

    def protect_pair(self, trues: tuple[int, int], label: bytes, scales: tuple[float, float],
                     policy: DisclosurePolicy) -> tuple[dict[str, Any], dict[str, Any]]:
        """The released (subjects, studies) of one cell: the reference :meth:`protect_pairs`
        is tested against."""
        first, second = self.uniforms(label, scales)
        return (_release(trues[0], trues[0] + _laplace(first, scales[0]), policy),
                _release(trues[1], trues[1] + _laplace(second, scales[1]), policy))

    def protect_pairs(self, trues: list[tuple[int, int]], labels: list[bytes],
                      scales: tuple[float, float], policy: DisclosurePolicy
                      ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """:meth:`protect_pair` of every cell, with what is the same for every cell worked out
        once (a grouped question releases thousands of numbers)."""
        return release_pairs(trues, self.draws(labels, scales), policy)

    def draws(self, labels: list[bytes], scales: tuple[float, float]
              ) -> list[tuple[float, float]]:
        """The Laplace noise of each cell's (subjects, studies) pair, in :meth:`protect_pair`'s
        arithmetic. It depends on the question, the cell and the scales, never on the counts,
        so it can be drawn while the engine counts."""
        log = math.log
        first_scale, second_scale = scales
        scaled = self._keyed.copy()  # the scales, then each label: what uniforms() hashes
        scaled.update(_scales(scales))
        keyed, unpack = scaled.copy, _HALVES.unpack
        out: list[tuple[float, float]] = []
        append = out.append
        # uniforms() and _laplace() written out (a grouped question draws thousands): the
        # halves' top 53 bits, as _halves() takes them, and the same float operations
        for label in labels:
            h = keyed()
            h.update(label)
            high, low = unpack(h.digest())
            u = ((high >> 11) + 0.5) / _TWO_53 - 0.5
            first = (-first_scale if u >= 0 else first_scale) * log(1.0 - 2.0 * abs(u))
            u = ((low >> 11) + 0.5) / _TWO_53 - 0.5
            second = (-second_scale if u >= 0 else second_scale) * log(1.0 - 2.0 * abs(u))
            append((first, second))
        return out


def release_pairs(trues: list[tuple[int, int]], noise: list[tuple[float, float]],
                  policy: DisclosurePolicy) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The released (subjects, studies) of each cell from its true counts and its
    :meth:`Noise.draws`: ``_release`` of ``true + noise``. Equal answers share one dict: the
    caller only serialises them."""
    if policy.exact:  # tests only
        return [(_exact(a), _exact(b)) for a, b in trues]
    rounding, floor = policy.rounding, policy.floor
    hidden = {"value": None, "suppressed": True, "display": f"<{floor}"}
    made: dict[int, dict[str, Any]] = {}
    out: list[tuple[dict[str, Any], dict[str, Any]]] = []
    append = out.append
    # _release's arithmetic written out for both numbers of a cell (a grouped question
    # releases thousands: a call per number cost a third of the time)
    for (first_true, second_true), (first_noise, second_noise) in zip(trues, noise,
                                                                       strict=True):
        noisy = first_true + first_noise
        if noisy < floor:
            first = hidden
        else:
            value = round(noisy / rounding) * rounding
            if value < floor:
                value = floor
            first = made.get(value) or made.setdefault(
                value, {"value": value, "suppressed": False, "display": str(value)})
        noisy = second_true + second_noise
        if noisy < floor:
            second = hidden
        else:
            value = round(noisy / rounding) * rounding
            if value < floor:
                value = floor
            second = made.get(value) or made.setdefault(
                value, {"value": value, "suppressed": False, "display": str(value)})
        append((first, second))
    return out


_TWO_53 = float(1 << 53)
_HALVES = struct.Struct(">QQ")
_MASK_53 = (1 << 53) - 1


def _halves(digest: bytes) -> tuple[int, int]:
    """The two 53-bit draws of a 128-bit digest: its top bits and the top of its low half."""
    x = int.from_bytes(digest, "big")
    return x >> 75, (x >> 11) & _MASK_53


def _scales(scales: tuple[float, float]) -> bytes:
    """The two noise scales as 16 fixed bytes (so that scales + label is unambiguous)."""
    return struct.pack(">dd", *scales)


def _laplace(uniform: float, scale: float) -> float:
    u = uniform - 0.5
    return -scale * math.copysign(1.0, u) * math.log(1.0 - 2.0 * abs(u))


def _exact(true: int) -> dict[str, Any]:
    return {"value": true, "suppressed": False, "display": str(true)}


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
        return _exact(true)
    if noisy < policy.floor:
        return {"value": None, "suppressed": True, "display": f"<{policy.floor}"}
    value = max(rounded, policy.floor)
    return {"value": value, "suppressed": False, "display": str(value)}
