"""The harvester's fast cut (Oxigraph + dict index) gives exactly what the profile's rdflib path
gives: same dataset nodes, same canonical descriptions, same parsed records."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalogue.dcat import fastcut
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.profiles import get_profile
from catalogue.dcat.profiles.base import canonical_ntriples
from catalogue.testing.dcat_generator import record
from catalogue.testing.dcat_server import DcatSource, generate_records, render_page

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"


def _documents() -> list[tuple[str, bytes, str]]:
    docs = [(f.name, f.read_bytes(), "http://example.org/" + f.name)
            for f in sorted(DATA.rglob("*")) if f.suffix in (".ttl", ".nt")]
    source = DcatSource(generate_records(150, record), page_size=75)
    docs += [(f"generated-{i}", render_page(source, "http://h", i, None),
              f"http://h/catalog?page={i}") for i in (1, 2)]
    # the fast cut handles Turtle and N-Triples; other formats take the rdflib path
    return [d for d in docs if fastcut.can_cut(d[1], d[2])]


@pytest.mark.parametrize(("name", "content", "url"), _documents(), ids=lambda v: str(v)[:40])
def test_fast_cut_matches_the_profile(name: str, content: bytes, url: str) -> None:
    profile = get_profile()
    try:
        graph = profile.canonicalise(parse_rdf(content, filename=url, base=url))
    except Exception:
        with pytest.raises((SyntaxError, ValueError)):
            fastcut.index_page(content, url)
        return
    index = fastcut.index_page(content, url)
    slow, fast = profile.dataset_nodes(graph), index.dataset_nodes()
    assert len(slow) == len(fast)
    slow_texts = sorted(canonical_ntriples(profile.description(graph, n)) for n in slow)
    fast_texts = sorted(canonical_ntriples(index.description(n)) for n in fast)
    assert slow_texts == fast_texts
    slow_records = sorted((profile.parse_with_problems(profile.description(graph, n), n, "o")[0]
                           for n in slow), key=lambda d: d.identifier)
    fast_records = sorted((profile.parse_with_problems(index.description(n), n, "o")[0]
                           for n in fast), key=lambda d: d.identifier)
    assert slow_records == fast_records
