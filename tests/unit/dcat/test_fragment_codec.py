"""How export fragments are stored (``catalogue.store.exports.pack``/``unpack``)."""

from __future__ import annotations

import os

import pytest

from catalogue.store.exports import pack, unpack


@pytest.mark.parametrize("body", [
    b"<https://a.example/d> <http://purl.org/dc/terms/title> \"T\\u00e9st\"@en .\n" * 200,
    os.urandom(5000),  # incompressible: still round-trips
    b"x",
])
def test_a_packed_fragment_unpacks_to_itself(body: bytes) -> None:
    stored = pack(body)
    assert stored[:1] == b"\x01"
    assert unpack(stored) == body
    assert unpack(memoryview(stored)) == body  # as a driver may hand it over


def test_rdf_text_is_stored_smaller() -> None:
    body = b"<https://a.example/d> <http://www.w3.org/ns/dcat#keyword> \"lung\"@en .\n" * 100
    assert len(pack(body)) < len(body) / 5


@pytest.mark.parametrize("stored", [
    None, b"", b"<a> <b> <c> .",  # nothing, or a fragment stored before packing
    b"\x02" + pack(b"abc")[1:],  # a codec this version does not know
    b"\x01", b"\x01\xff\xff\xff\x7f" + b"\x00" * 8,  # truncated, absurd size
    pack(b"abc" * 100)[:-3],  # cut short
])
def test_what_is_not_a_packed_fragment_is_a_miss(stored: bytes | None) -> None:
    assert unpack(stored) is None
