"""Pseudonymisation: keyed, per provider, irreversible without the secret; dates coarsened."""

from __future__ import annotations

from datetime import date

import pytest

from catalogue.privacy.pseudonymise import Pseudonymiser, age_at, birth_year, coarsen

SECRET = "x" * 40


def test_keys_are_stable_keyed_and_per_provider() -> None:
    a = Pseudonymiser.for_provider(SECRET, "org-a")
    again = Pseudonymiser.for_provider(SECRET, "org-a")
    b = Pseudonymiser.for_provider(SECRET, "org-b")
    other_secret = Pseudonymiser.for_provider("y" * 40, "org-a")
    key = a.subject_key("http://fhir.example/", "patient-123")
    assert key == again.subject_key("http://fhir.example/", "patient-123")
    assert key != b.subject_key("http://fhir.example/", "patient-123")
    assert key != other_secret.subject_key("http://fhir.example/", "patient-123")
    assert key != a.subject_key("http://fhir.example/", "patient-124")
    assert "123" not in key and len(key) == 40
    uid = "1.2.840.113619.2.55.3.604688119.969.1268071029.320"
    assert a.study_key(uid) != a.hash_identifier("series", uid) != uid
    assert uid not in a.study_key(uid)


def test_no_secret_no_pseudonyms() -> None:
    with pytest.raises(ValueError):
        Pseudonymiser.for_provider("", "org-a")


@pytest.mark.parametrize(("value", "expected"), [
    ("1961-07-14", 1961), ("1961-07", 1961), ("1961", 1961), ("19610714", 1961),
    ("1961-07-14T10:00:00Z", 1961), (date(1961, 7, 14), 1961), ("not a date", None), (None, None),
])
def test_birth_year(value: object, expected: int | None) -> None:
    assert birth_year(value) == expected  # type: ignore[arg-type]


def test_dates_are_coarsened_and_ages_computed_from_exact_dates() -> None:
    assert coarsen("2021-03-17") == date(2021, 3, 1)
    assert coarsen("2021-03-17", "year") == date(2021, 1, 1)
    assert coarsen("2021-03-17", "day") == date(2021, 3, 17)
    assert age_at("1961-07-14", "2021-07-13") == 59  # the day before the birthday
    assert age_at("1961-07-14", "2021-07-14") == 60
    assert age_at("2030-01-01", "2021-01-01") is None  # implausible
    assert age_at(None, "2021-01-01") is None
