"""Dataset aggregates derived from study-level records, made safe to publish.

Every count below the floor (default 10) is published as suppressed (``{"suppressed": true,
"display": "<10"}``), never exact, and zero looks the same as a small count. The typical age
range and the acquisition period are drawn only from age bands and years that themselves reach
the floor, so one outlying patient cannot show up as a range end.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

DEFAULT_FLOOR = 10


def protected(count: int, floor: int = DEFAULT_FLOOR) -> dict[str, Any]:
    """One publishable count."""
    if count < floor:
        return {"suppressed": True, "display": f"<{floor}"}
    return {"value": count}


def value(cell: dict[str, Any] | None) -> int | None:
    """The published number of a protected cell (``None`` when suppressed or absent)."""
    if not cell or cell.get("suppressed"):
        return None
    found = cell.get("value")
    return int(found) if found is not None else None


def protect(counts: dict[str, Any], floor: int = DEFAULT_FLOOR, age_step: int = 5,
            source: str | None = None) -> dict[str, Any]:
    """The ``datasets.aggregates`` document for exact ``counts`` from
    :func:`catalogue.store.records.aggregate_counts`."""
    def cells(name: str) -> dict[str, dict[str, Any]]:
        # values that do not reach the floor are not even named: a rare manufacturer or body
        # part would otherwise single a patient out
        return {k: protected(n, floor) for k, n in sorted(counts[name].items()) if n >= floor}

    bands = sorted(int(k) for k, n in counts["age_bands"].items() if n >= floor)
    years = sorted(int(k) for k, n in counts["study_years"].items() if n >= floor)
    detail: dict[str, Any] = {
        "source": source,
        "computed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "floor": floor,
        "subjects": protected(counts["subjects"], floor),
        "studies": protected(counts["studies"], floor),
        "modalities": cells("modalities"),
        "body_parts": cells("body_parts"),
        "manufacturers": cells("manufacturers"),
        "sexes": cells("sexes"),
        "age_bands": {str(b): protected(counts["age_bands"][str(b)], floor) for b in bands},
    }
    # the dataset attributes these replace (Dataset.with_aggregates): published values only
    return {
        "number_of_individuals": value(detail["subjects"]),
        "number_of_studies": value(detail["studies"]),
        "min_age": bands[0] if bands else None,
        "max_age": bands[-1] + age_step - 1 if bands else None,
        "modalities": list(detail["modalities"]),
        "body_parts": list(detail["body_parts"]),
        "manufacturers": list(detail["manufacturers"]),
        "sexes": [s for s in detail["sexes"] if s != "unknown"],
        "temporal_start": f"{years[0]}-01-01" if years else None,
        "temporal_end": f"{years[-1]}-12-31" if years else None,
        "records": detail,
    }
