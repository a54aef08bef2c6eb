"""Parse-speed benchmark: rdflib vs Oxigraph on a generated EUCAIM-style Turtle catalogue.

Run: ``python3 -m tests.unit.dcat.bench_parse [datasets]`` (default 10,000 datasets). Also
times the harvest path (canonicalise, find datasets, cut descriptions, parse them).
"""

from __future__ import annotations

import sys
import time

from catalogue.dcat import formats
from catalogue.dcat.formats import parse_rdf
from catalogue.dcat.profiles import get_profile

HEAD = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .
@prefix healthdcatap: <https://w3id.org/healthdcat-ap#> .
@prefix eucaim: <https://cancerimage.eu/ontology/EUCAIM#> .
<https://example.org/catalogue> a dcat:Catalog ; dct:title "Generated"@en .
"""


def generate(datasets: int) -> bytes:
    """A Turtle catalogue of ``datasets`` EUCAIM-style datasets (~29 triples each)."""
    parts = [HEAD]
    for i in range(datasets):
        parts.append(f"""<https://example.org/catalogue> dcat:dataset <https://example.org/ds/{i}> .
<https://example.org/ds/{i}> a dcat:Dataset ;
  dct:identifier "ds-{i}" ;
  dct:title "Dataset {i}"@en, "Jeu de données {i}"@fr ;
  dct:description "Generated cancer imaging dataset number {i} with CT and MR studies."@en ;
  dcat:keyword "lung"@en, "CT"@en ;
  dcat:theme <http://publications.europa.eu/resource/authority/data-theme/HEAL> ;
  dct:issued "2024-01-{(i % 28) + 1:02d}"^^xsd:date ;
  healthdcatap:numberOfUniqueIndividuals "{i * 3}"^^xsd:nonNegativeInteger ;
  healthdcatap:numberOfRecords "{i * 7}"^^xsd:nonNegativeInteger ;
  eucaim:hasImageModality eucaim:IMG1000022 ;
  dct:spatial <http://publications.europa.eu/resource/authority/country/ESP> ;
  dct:publisher [ a foaf:Organization ; foaf:name "Hospital {i % 50}"@en ] ;
  dcat:contactPoint [ a vcard:Kind ; vcard:fn "Contact {i}" ;
    vcard:hasEmail <mailto:c{i}@example.org> ] ;
  dct:temporal [ a dct:PeriodOfTime ; dcat:startDate "2019-01-01"^^xsd:date ;
    dcat:endDate "2023-12-31"^^xsd:date ] ;
  dcat:distribution <https://example.org/ds/{i}/dist> .
<https://example.org/ds/{i}/dist> a dcat:Distribution ;
  dcat:accessURL <https://example.org/access/{i}> ;
  dcat:byteSize "{i * 1000}"^^xsd:nonNegativeInteger ;
  dct:format <http://publications.europa.eu/resource/authority/file-type/DCM> .
""")
    return "".join(parts).encode()


def main(datasets: int = 10_000) -> None:
    data = generate(datasets)
    print(f"{datasets:,} datasets, {len(data) / 1e6:.1f} MB of Turtle")
    engines = ["rdflib", "oxigraph"] if formats.oxigraph_available() else ["rdflib"]
    graph = None
    for engine in engines:
        start = time.perf_counter()
        graph = parse_rdf(data, content_type="text/turtle", engine=engine, max_triples=10**8)
        seconds = time.perf_counter() - start
        print(f"parse {engine:9s} {len(graph):,} triples in {seconds:6.2f} s = "
              f"{len(graph) / seconds:,.0f} triples/s")
    assert graph is not None
    profile = get_profile()
    start = time.perf_counter()
    profile.canonicalise(graph)
    nodes = profile.dataset_nodes(graph)
    for node in nodes:
        profile.parse_with_problems(profile.description(graph, node), node, "bench")
    seconds = time.perf_counter() - start
    print(f"harvest path (canonicalise + describe + parse) {len(nodes):,} datasets in "
          f"{seconds:6.2f} s = {len(nodes) / seconds:,.0f} datasets/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)
