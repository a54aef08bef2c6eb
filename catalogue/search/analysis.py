"""Text analysis shared by every engine: how words are cut, folded and stemmed.

The indices analyse text as: runs of letters and digits → lowercase → ASCII folding (Lucene's
``asciifolding``, which tantivy's ``ascii_fold`` ports) → for language fields, a Snowball
stemmer. Query words are cut here with the very same tantivy analyser, so a query word is always
a word the indices could have produced.
"""

from __future__ import annotations

import functools
import threading
from typing import Any

import tantivy

_LOCAL = threading.local()


def folding_analyzer() -> Any:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .build()
    )


def stemming_analyzer(language: str) -> Any:
    return (
        tantivy.TextAnalyzerBuilder(tantivy.Tokenizer.simple())
        .filter(tantivy.Filter.lowercase())
        .filter(tantivy.Filter.ascii_fold())
        .filter(tantivy.Filter.stemmer(language))
        .build()
    )


def _analyzer(language: str | None) -> Any:
    cache: dict[str | None, Any] = getattr(_LOCAL, "analyzers", None) or {}
    _LOCAL.analyzers = cache
    found = cache.get(language)
    if found is None:
        found = cache[language] = (
            folding_analyzer() if language is None else stemming_analyzer(language))
    return found


def words(text: str) -> list[str]:
    """``text`` cut into folded words (lowercase, accents and ligatures folded to ASCII)."""
    return list(_analyzer(None).analyze(text)) if text else []


@functools.lru_cache(maxsize=20_000)
def stem(language: str, word: str) -> str | None:
    """The stem of one folded word in ``language`` (None if the analyser drops it)."""
    found = _analyzer(language).analyze(word)
    return found[0] if found else None
