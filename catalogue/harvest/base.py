"""What every harvester shares: the run context it reports into, and the contract it fulfils.

A harvester never aborts on one bad record: it records the error (record identifier, location,
property, message) and goes on. Only a source that cannot be read at all fails the run.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from catalogue.store.db import Database

COUNTERS = ("seen", "created", "updated", "unchanged", "withdrawn", "invalid", "failed")
#: counters of study-level (FHIR, OMOP, DICOMweb) runs: records read, written, skipped...
RECORD_COUNTERS = ("seen", "created", "updated", "unchanged", "deleted", "invalid", "skipped")


class SourceUnreadable(Exception):
    """The source itself could not be read (not one record): the run fails."""


@dataclass
class RunContext:
    """State of one harvest run, filled in by the harvester."""

    db: Database
    organisation_id: str
    url: str
    run_id: str | None = None
    source_id: str | None = None
    validation_mode: str = "lenient"
    dry_run: bool = False
    modified_since: datetime | None = None
    allow_private: bool = False
    allowed_origins: frozenset[str] = frozenset()
    state: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    errors: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = True  # False when part of the source could not be read
    validate: bool = True  # SHACL validation of new/changed records (benchmarks switch it off)
    dataset_id: str | None = None  # target dataset of study-level sources
    secret: str = ""  # server secret: pseudonym keys are derived from it
    config: dict[str, Any] = field(default_factory=dict)  # the source's settings
    bearer_token: str | None = None  # credentials of the source (never logged or stored)
    aggregate_floor: int = 10  # counts below it are published as suppressed
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    progress: Callable[[dict[str, int]], None] | None = None
    on_flush: Callable[[RunContext], None] | None = None
    _last_flush: float = field(default=0.0, repr=False)

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def timed(self, stage: str, seconds: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + seconds

    def error(
        self,
        message: str,
        *,
        record: str | None = None,
        location: str | None = None,
        prop: str | None = None,
        severity: str = "error",
    ) -> None:
        self.errors.append(
            {
                "record": record,
                "location": location,
                "property": prop,
                "message": message,
                "severity": severity,
            }
        )

    def tick(self, force: bool = False) -> None:
        """Report progress; flush errors and heartbeat at most every second."""
        if self.progress:
            self.progress(dict(self.counts))
        now = time.monotonic()
        if self.on_flush and (force or now - self._last_flush > 1.0):
            self._last_flush = now
            self.on_flush(self)


class Harvester(abc.ABC):
    """Reads one kind of source into the store."""

    kind: str = "abstract"

    @abc.abstractmethod
    def run(self, ctx: RunContext) -> None:
        """Harvest ``ctx.url`` for ``ctx.organisation_id``, updating ``ctx`` counts and errors.

        Raise :class:`SourceUnreadable` only when nothing usable could be read.
        """
