"""Search documents: vocabulary expansions cached per process are never shared between
documents, and a study's combination tokens are every combination of its values."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

from catalogue.search import nested
from catalogue.search.indexer import dataset_document
from catalogue.search.mappings import load_definition
from catalogue.testing.search_corpus import generate_datasets


def test_documents_do_not_share_the_cached_expansions() -> None:
    """Code lists are expanded once per process: changing one document's lists afterwards
    must not change the next document with the same codes."""
    ds = next(generate_datasets(1, seed=9))
    first, second = dataclasses.replace(ds, id="ds-1"), dataclasses.replace(ds, id="ds-2")
    one = dataset_document(first)
    path, modalities = list(one["conditions_path"]), list(one["modalities_path"])
    assert path and modalities
    one["conditions_path"].append("tampered")
    one["conditions"].clear()
    one["modalities_path"].clear()
    two = dataset_document(second)
    assert two["conditions_path"] == path and two["modalities_path"] == modalities
    assert two["conditions"]


def _reference_tokens(dimensions: tuple[str, ...], item: dict[str, Any]) -> set[str]:
    """Every non-empty subset of the dimensions, every combination of their values."""
    values = []
    for dim in dimensions:
        raw = item.get(dim.split(".", 1)[1])
        found = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        values.append([f"{dim.split('.', 1)[1]}={v}" for v in dict.fromkeys(found)])
    out: set[str] = set()
    for size in range(1, len(dimensions) + 1):
        for chosen in itertools.combinations(range(len(dimensions)), size):
            out.update("|".join(combo) for combo in
                       itertools.product(*(values[i] for i in chosen)))
    return out


def test_study_tokens_are_every_combination_once() -> None:
    studies = load_definition("subjects").nested["studies"]
    items = [
        {"modalities_path": ["CT", "XR"], "body_parts_path": ["CHEST", "LUNG", "THORAX"],
         "manufacturer": "Siemens", "age_band": 60, "year": 2021},
        {"modalities_path": ["MR"], "body_parts_path": [], "manufacturer": None,
         "age_band": 35, "year": None},
        {"modalities_path": ["CT", "CT"], "body_parts_path": ["CHEST"], "age_band": 0},
    ]
    for item in items:
        tokens = nested.study_tokens(studies, item)
        assert len(tokens) == len(set(tokens))
        assert set(tokens) == _reference_tokens(studies.dimensions, item)
