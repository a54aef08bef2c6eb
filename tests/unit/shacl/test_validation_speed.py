"""Validation speed: the harvester validates every new or changed record.

CPU time of the best of several rounds, so that other work on the machine does not count.
Measured on the 2-CPU development machine (default profiles): 20-31 validations/s for the
150-triple record, 24-41/s for the Health-RI example dataset. The floor leaves room for slower CI
machines; below 20/s on a developer machine, look at what changed (see the module docstring of
catalogue/dcat/validation.py).
"""

from __future__ import annotations

import time

from rdflib import Graph, URIRef
from rdflib.term import Node

from catalogue.dcat.validation import Validator

from .conftest import load
from .records import DATASET, complete_record

FLOOR = 12.0  # validations per second


def rate(validator: Validator, graph: Graph, node: Node, rounds: int = 5, runs: int = 6) -> float:
    validator.validate_dataset(graph, node)  # warm up
    best = float("inf")
    for _ in range(rounds):
        started = time.process_time()
        for _ in range(runs):
            validator.validate_dataset(graph, node)
        best = min(best, (time.process_time() - started) / runs)
    return 1.0 / best


def test_typical_150_triple_record(validator: Validator) -> None:
    graph = complete_record(extra_keywords=27)
    assert len(graph) == 150
    per_second = rate(validator, graph, DATASET)
    print(f"150-triple EUCAIM record: {per_second:.1f} validations/s")
    assert per_second >= FLOOR


def test_health_ri_example_dataset(validator: Validator, healthri_validator: Validator) -> None:
    graph = load("health-ri/example-dataset.ttl")
    node = URIRef("http://example.com/dataset")
    default = rate(validator, graph, node)
    health_ri = rate(healthri_validator, graph, node)
    print(f"Health-RI example dataset: {default:.1f}/s (default profiles), "
          f"{health_ri:.1f}/s (dcat-ap-3 + health-ri)")
    assert min(default, health_ri) >= FLOOR
