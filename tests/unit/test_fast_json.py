"""The search API's JSON, written by orjson, reads back exactly as Flask's ``jsonify`` would
have written it, whatever the values."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from flask import Flask, jsonify

from catalogue.api.v1 import fast_json


@dataclass
class _Point:
    x: int
    label: str


def test_fast_json_reads_back_as_jsonify() -> None:
    app = Flask("fast-json-test")
    payloads: list[Any] = [
        {"total": 3, "hits": [{"title": {"fr": "Imagerie du côlon ✓"}, "n": None,
                               "score": 1.5e-7, "big": 2**63 - 1, "tags": ["a", "b"]}]},
        {"when": datetime(2024, 1, 5, 10, 0, tzinfo=UTC), "day": date(2024, 2, 29),
         "id": uuid.UUID("12345678-1234-5678-1234-567812345678"), "point": _Point(1, "p"),
         "amount": Decimal("12.50")},
        {"huge": 2**70, "nested": [[{"deep": "ß"}]]},  # beyond 64 bits: through jsonify
        [],
    ]
    with app.app_context():
        for payload in payloads:
            fast, slow = fast_json(payload), jsonify(payload)
            assert fast.mimetype == slow.mimetype == "application/json"
            assert json.loads(fast.get_data()) == json.loads(slow.get_data())
            assert fast.get_data().endswith(b"\n")
