"""Highlighting with per-word decisions cached per process marks exactly the words that the
plain rule marks: a word of the text whose folded form is a query word, or shares a stem with
one in the text's languages."""

from __future__ import annotations

import html
import re

from catalogue.search.analysis import stem, words
from catalogue.services.search import highlight, highlights
from catalogue.testing.search_corpus import generate_datasets

QUERIES = ("lung", "breast MRI", "glioblastoma", "radiomics", "Lungenkrebs", "segmentation",
           "cancer du poumon", "treatment response", "Mammographie", "imágenes", "Œsophage")


def _reference(text: str, query: str, languages: tuple[str, ...]) -> str | None:
    """The rule, word by word, without any cache (titles: no snippet limit)."""
    wanted = set(words(query))
    stems = {s for w in wanted for lang in languages if (s := stem(lang, w))}
    out, cursor, marked = [], 0, False
    for match in re.finditer(r"\w+", text):
        folded = words(match.group())
        if any(w in wanted for w in folded) or any(
                stem(lang, w) in stems for w in folded for lang in languages):
            out += [html.escape(text[cursor:match.start()]),
                    f"<mark>{html.escape(match.group())}</mark>"]
            cursor, marked = match.end(), True
    return "".join([*out, html.escape(text[cursor:])]) if marked else None


def test_cached_word_decisions_mark_what_the_plain_rule_marks() -> None:
    marked = 0
    for ds in generate_datasets(300, seed=11):
        for query in QUERIES:
            for lang, text in ds.title.items():
                languages = ("english", "german") if lang == "de" else ("english",)
                expected = _reference(text, query, languages)
                assert highlight(text, query, languages) == expected, (text, query)
                marked += expected is not None
    assert marked > 100  # the corpus and queries do match: the comparison is not vacuous


def test_a_word_matches_by_any_of_its_folded_forms_and_stems() -> None:
    assert highlight("Œsophageal imaging", "oesophageal") == "<mark>Œsophageal</mark> imaging"
    assert highlight("Segmentations of tumours", "segmentation") == (
        "<mark>Segmentations</mark> of tumours")
    assert highlight("Lungenkrebs-Studie", "lungenkrebs", ("english", "german")) == (
        "<mark>Lungenkrebs</mark>-Studie")
    assert highlight("Brain MRI", "lung") is None
    found = highlights({"en": "Lung CT"}, {"en": "Chest CT of lung cancer patients"}, "lung")
    assert found == {"title": "<mark>Lung</mark> CT",
                     "description": "Chest CT of <mark>lung</mark> cancer patients"}
