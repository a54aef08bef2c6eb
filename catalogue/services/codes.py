"""Coded attributes against the vocabularies: unknown codes are kept, and reported."""

from __future__ import annotations

from catalogue.model.dataset import Dataset
from catalogue.ontology import get_vocabulary, normalise

#: dataset attribute → vocabulary (the index normalises the same attributes)
CODED = {"conditions": "conditions", "modalities": "modalities", "body_parts": "body_parts"}


def unknown_code_warnings(ds: Dataset) -> list[dict[str, str | None]]:
    """One warning per coded value that no vocabulary concept matches (kept as given: it stays
    searchable and filterable as is, but is not part of any hierarchy)."""
    out: list[dict[str, str | None]] = []
    for attribute, vocabulary in CODED.items():
        _, unknown = normalise(vocabulary, getattr(ds, attribute))
        title = get_vocabulary(vocabulary).title
        for value in unknown:
            out.append({"severity": "warning", "path": attribute,
                        "message": f"{attribute}: {value!r} is not in the {title} vocabulary; "
                                   "kept as given (searchable as is, outside the hierarchy)"})
    return out
