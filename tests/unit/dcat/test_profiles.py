"""Profiles: dataset discovery, lossless descriptions, structured fields, round trips."""

from __future__ import annotations

import copy
from dataclasses import asdict, replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from rdflib import BNode, Graph, Literal, URIRef
from rdflib.compare import isomorphic

from catalogue.dcat.formats import RdfError, parse_rdf
from catalogue.dcat.namespaces import (
    DCAT,
    DCT,
    EUCAIM,
    HEALTHDCATAP,
    RDF,
    VCARD,
    canonical_iri,
    canonicalise_graph,
)
from catalogue.dcat.profiles import (
    DcatAp3Profile,
    EucaimProfile,
    HealthDcatApProfile,
    Profile,
    get_profile,
)
from catalogue.errors import ConfigError
from catalogue.model.dataset import Dataset, Distribution

DATA = Path(__file__).resolve().parents[2] / "data" / "dcat"
DOCUMENTS = sorted(
    p for p in DATA.rglob("*") if p.suffix in (".ttl", ".nt", ".jsonld", ".rdf", ".trig")
)
EU = "https://cancerimage.eu/ontology/EUCAIM#"
CATALOGUE = DATA / "eucaim" / "eucaim-catalogue.ttl"
DS = "https://catalogue.example.org/datasets/"


def load(path: Path, profile: Profile | None = None) -> Graph:
    profile = profile or get_profile()
    return profile.canonicalise(parse_rdf(path.read_bytes(), filename=path.name))


def parse_one(path: Path, iri: str, name: str = "eucaim") -> tuple[Dataset, list[str]]:
    profile = get_profile(name)
    graph = load(path, profile)
    node = URIRef(iri)
    assert node in profile.dataset_nodes(graph)
    return profile.parse_with_problems(profile.description(graph, node), node, "org-1")


# -- every shared example ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dcat_ap", "healthdcat_ap", "eucaim"])
@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(DATA)))
def test_every_example_parses_and_round_trips(path: Path, name: str) -> None:
    profile = get_profile(name)
    try:
        graph = load(path, profile)
    except RdfError as error:  # a precise refusal is an accepted outcome
        assert error.code == "invalid_rdf" and error.message
        return
    for node in profile.dataset_nodes(graph):
        description = profile.description(graph, node)
        dataset, problems = profile.parse_with_problems(description, node, "org-1")
        assert dataset.identifier and dataset.organisation_id == "org-1"
        assert all(isinstance(p, str) and ":" in p for p in problems)
        out = profile.serialise(dataset)
        assert isomorphic(out, canonicalise_graph(description)), f"{path.name} {node}"
        # the stored N-Triples is itself the whole description
        assert isomorphic(parse_rdf(dataset.graph.encode(), filename="x.nt"), description)


def test_dataset_nodes_include_series_members_but_not_catalogues_or_series() -> None:
    profile = get_profile()
    graph = load(DATA / "dcat-ap-3" / "example-bee-population-dataset-series.ttl")
    assert [str(n) for n in profile.dataset_nodes(graph)] == [
        "https://data.gov.gr/id/dataset/BeePopulation2022",
        "https://data.gov.gr/id/dataset/BeePopulation2023",
    ]
    graph = load(CATALOGUE)
    assert [str(n) for n in profile.dataset_nodes(graph)] == [
        DS + "breast-mg", DS + "lung-ct-screening", DS + "procancer-mri"
    ]
    # the Health-RI catalogue lists datasets it does not describe: none to harvest
    assert profile.dataset_nodes(load(DATA / "health-ri" / "example-catalog.ttl")) == []


def test_description_keeps_nested_resources_and_stops_at_other_datasets() -> None:
    profile = get_profile()
    graph = load(CATALOGUE)
    description = profile.description(graph, URIRef(DS + "procancer-mri"))
    forth = URIRef("https://catalogue.example.org/organisations/forth")
    dist = URIRef(DS + "procancer-mri/dicom")
    # a shared publisher IRI described in the document is included, with its contact point
    assert (forth, URIRef("http://xmlns.com/foaf/0.1/name"),
            Literal("Ίδρυμα Τεχνολογίας και Έρευνας", lang="el")) in description
    assert (dist, DCAT.accessURL, None) in description
    assert (None, URIRef("http://spdx.org/rdf/terms#checksumValue"), None) in description
    assert (URIRef("https://catalogue.example.org/quality/integrity"), None, None) in description
    assert (URIRef(DS + "procancer-mri"), URIRef("https://example.org/unknown#localNote"),
            Literal("A property no profile knows; it must survive.", lang="en")) in description
    # neither the catalogue nor the other datasets
    assert (URIRef("https://catalogue.example.org/catalogue"), None, None) not in description
    assert (URIRef(DS + "lung-ct-screening"), None, None) not in description


def test_series_member_description_keeps_the_series_but_not_the_other_member() -> None:
    profile = get_profile()
    graph = load(DATA / "dcat-ap-3" / "example-bee-population-dataset-series-ordered.jsonld")
    description = profile.description(graph, URIRef("https://data.gov.gr/id/dataset/BeePopulation2022"))
    series = URIRef("https://data.gov.gr/id/datasetseries/BeePopulation")
    assert (series, DCT.title, Literal("Bee population", lang="en")) in description
    assert (URIRef("https://data.gov.gr/id/dataset/BeePopulation2023"), None, None) \
        not in description


# -- namespace aliases --------------------------------------------------------------------------


def test_alias_iris_are_canonicalised() -> None:
    assert canonical_iri("https://w3id.org/healthdcat-ap#minTypicalAge") == str(
        HEALTHDCATAP.minTypicalAge)
    assert canonical_iri("http://www.w3.org/2006/vcard#fn") == str(VCARD.fn)
    assert canonical_iri("https://hyperontology.eucaim.cancerimage.eu/#CLIN1000075") == \
        EU + "CLIN1000075"
    assert canonical_iri("http://www.w3.org/2006/vcard/ns#fn") == str(VCARD.fn)
    graph = Graph()
    x = URIRef("http://ex.org/x")
    graph.add((x, URIRef("https://w3id.org/healthdcat-ap#numberOfRecords"),
               Literal("3", datatype=URIRef("https://w3id.org/healthdcat-ap#count"))))
    graph.add((x, RDF.type, URIRef("http://www.w3.org/2006/vcard#Kind")))
    graph.bind("hd", "https://w3id.org/healthdcat-ap#")
    canonicalise_graph(graph)
    assert (x, HEALTHDCATAP.numberOfRecords,
            Literal("3", datatype=HEALTHDCATAP["count"])) in graph
    assert (x, RDF.type, VCARD.Kind) in graph
    assert dict(graph.namespaces())["hd"] == URIRef(str(HEALTHDCATAP))


def test_namespace_aliases_produce_identical_datasets() -> None:
    canonical, _ = parse_one(CATALOGUE, DS + "lung-ct-screening")
    aliased, _ = parse_one(DATA / "eucaim" / "eucaim-aliases.ttl", DS + "lung-ct-screening")
    assert asdict(aliased) == asdict(canonical)
    assert aliased.min_age == 50 and aliased.number_of_studies == 5380
    assert aliased.modalities == [EU + "IMG1000020"]
    assert aliased.fields["contact_points"] == [
        {"types": [str(VCARD.Kind)], "email": ["imaging@lafe.example.es"]}
    ]


# -- structured fields --------------------------------------------------------------------------


def test_eucaim_structured_fields() -> None:
    ds, problems = parse_one(CATALOGUE, DS + "procancer-mri")
    assert problems == []
    assert ds.identifier == DS + "procancer-mri" and ds.iri == DS + "procancer-mri"
    assert ds.title == {"en": "Prostate cancer multiparametric MRI collection",
                        "el": "Συλλογή πολυπαραμετρικής MRI καρκίνου του προστάτη"}
    assert ds.keywords == ["mpMRI", "prostate cancer", "segmentation", "καρκίνος προστάτη"]
    assert ds.themes == ["http://publications.europa.eu/resource/authority/data-theme/HEAL"]
    auth = "https://hdeu-dcat.acceptance.data.health.europa.eu/resource/authority/"
    assert ds.health_categories == [auth + "healthcategories/IMAGING",
                                    auth + "health-theme/CANCER_DISEASE"]
    assert ds.conditions == [EU + "CLIN1000075", "ICD-10: C61"]
    assert ds.modalities == [EU + "IMG1000022"]
    assert ds.body_parts == [EU + "BP1000233"]
    assert ds.manufacturers == [EU + "IMG1000047", EU + "IMG1000049"]
    assert ds.sexes == [EU + "COM1001366"]
    assert ds.countries == ["ES", "GR", "NL"]
    assert ds.access_rights == \
        "http://publications.europa.eu/resource/authority/access-right/RESTRICTED"
    assert ds.number_of_individuals == 1500 and ds.number_of_studies == 1623
    assert (ds.min_age, ds.max_age) == (45, 85)
    assert (ds.temporal_start, ds.temporal_end) == (date(2016, 1, 1), date(2022, 12, 31))
    assert ds.landing_page == "https://www.procancer-i.eu/datasets/mri"
    assert ds.issued == datetime(2022, 9, 10, tzinfo=UTC)
    assert ds.modified == datetime(2024, 2, 15, 10, 30, tzinfo=UTC)
    [dist] = ds.distributions
    assert dist == Distribution(
        title={"en": "DICOM studies via the EUCAIM negotiator"},
        access_url="https://negotiator.eucaim.cancerimage.eu/collection/"
                   "a96b56cd-59d4-444a-8e59-32a7fb0d7dea",
        media_type="application/dicom",
        format="http://publications.europa.eu/resource/authority/file-type/DCM",
        licence="https://catalogue.example.org/licences/procancer-dua",
        byte_size=348966092800,
    )
    f = ds.fields
    assert f["publisher"]["iri"] == "https://catalogue.example.org/organisations/forth"
    assert f["publisher"]["contact_point"]["email"] == ["cbml@ics.forth.gr"]
    assert f["custodian"]["name"] == {"en": "University Hospital of Heraklion"}
    assert f["hdab"]["contact_point"]["contact_page"] == ["https://hdab.example.gr/apply"]
    assert f["contact_points"][0]["email"] == ["access-committee@procancer-i.example.eu"]
    assert f["applicable_legislation"] == ["http://data.europa.eu/eli/reg/2016/679/oj",
                                           "http://data.europa.eu/eli/reg/2025/327/oj"]
    assert f["legal_basis"] == ["https://w3id.org/dpv#Consent"]
    assert f["purpose"][0]["@type"] == "dpv:Purpose"
    assert f["personal_data"] == ["https://w3id.org/dpv/pd#Age", "https://w3id.org/dpv/pd#Gender"]
    assert f["retention_period"] == [{"start": "2021-03-01", "end": "2034-12-31"}]
    assert f["coding_systems"] == ["https://www.wikidata.org/entity/Q19597236"]
    assert f["version"] == "2.1.0" and f["has_structured_data"] is False
    assert f["languages"] == ["http://publications.europa.eu/resource/authority/language/ENG"]
    assert f["conforms_to"] == ["https://www.dicomstandard.org/current"]
    assert f["interoperability_level"] == EU + "SPEC1000011"
    assert f["number_of_segmentations"] == 1200
    assert f["provenance"][0]["rdfs:label"]["@language"] == "en"
    assert f["qualified_attributions"][0]["agent"]["name"] == {
        "en": "Radboud University Medical Center"}
    # the quality annotation points back at the dataset: a reference, not a copy
    assert f["quality_annotations"][0]["oa:hasTarget"] == DS + "procancer-mri"
    [extras] = f["distributions"]
    assert extras["checksum"]["value"].startswith("4e0740")
    assert extras["policy"][0]["odrl:permission"]["odrl:action"] == [
        "http://www.w3.org/ns/odrl/2/derive", "http://www.w3.org/ns/odrl/2/read"]
    assert extras["package_format"] == "application/zip"


def test_partial_dates_widen_and_untagged_text_is_und() -> None:
    ds, _ = parse_one(CATALOGUE, DS + "lung-ct-screening")
    assert (ds.temporal_start, ds.temporal_end) == (date(2019, 1, 1), date(2023, 6, 30))
    assert ds.identifier == "lung-ct-screening-2019-2023"
    hri, _ = parse_one(DATA / "health-ri" / "example-dataset.ttl", "http://example.com/dataset")
    assert hri.title == {"und": "Example Dataset"}
    assert hri.licence == "https://opensource.org/license/mit"


def test_geonames_locations_are_kept_but_are_not_countries() -> None:
    ds, _ = parse_one(CATALOGUE, DS + "breast-mg")
    assert ds.countries == ["IT"]
    assert "https://sws.geonames.org/3170647/" in ds.fields["spatial"]
    assert [d.title for d in ds.distributions] == [{"en": "Anonymised sample"},
                                                   {"en": "DICOM images"}]


def test_jsonld_with_shipped_dcat_ap_context() -> None:
    ds, problems = parse_one(DATA / "eucaim" / "eucaim-glioblastoma.jsonld",
                             DS + "glioblastoma-mri")
    assert problems == []
    assert ds.identifier == "glioblastoma-mri-longitudinal"
    assert ds.title["de"] == "Longitudinale MRT von Glioblastomen unter Standardtherapie"
    assert ds.countries == ["DE"]
    assert ds.number_of_individuals == 412 and ds.number_of_studies == 1890
    assert ds.sexes == [EU + "COM1001366", EU + "COM1001370"]
    assert ds.fields["publisher"]["name"] == {"en": "Charité Imaging Research"}
    assert ds.distributions[0].byte_size == 52428800000
    assert ds.issued == datetime(2023, 5, 2, tzinfo=UTC)


def test_profiles_are_chained() -> None:
    assert issubclass(EucaimProfile, HealthDcatApProfile)
    assert issubclass(HealthDcatApProfile, DcatAp3Profile)
    assert isinstance(get_profile(), EucaimProfile)
    assert isinstance(get_profile("HealthDCAT-AP"), HealthDcatApProfile)
    with pytest.raises(ConfigError):
        get_profile("no-such-profile")
    # the base profile reads only DCAT-AP; the rest stays in the graph
    ds, _ = parse_one(CATALOGUE, DS + "procancer-mri", "dcat_ap")
    assert ds.min_age is None and ds.modalities == [] and ds.countries == ["ES", "GR", "NL"]
    assert "interoperabilityLevel" in (ds.graph or "")


def test_bad_values_are_problems_not_crashes() -> None:
    ds, problems = parse_one(DATA / "eucaim" / "eucaim-bad-values.ttl", DS + "messy")
    assert ds.number_of_individuals is None and ds.number_of_studies is None
    assert ds.min_age is None and ds.issued is None and ds.licence is None
    assert ds.temporal_start is None and ds.temporal_end == date(2023, 12, 31)
    assert ds.distributions[0].byte_size is None
    expected = [
        'healthdcatap:numberOfUniqueIndividuals: "about 500" is not a non-negative integer',
        "healthdcatap:numberOfRecords: \"-3\"^^<http://www.w3.org/2001/XMLSchema#integer> is "
        "not a non-negative integer",
        'healthdcatap:minTypicalAge: "eighteen" is not a non-negative integer',
        'dct:issued: "10/09/2022" is not a date or date-time',
        'dct:temporal / dcat:startDate: "sometime in 2019" is not a date or date-time',
        'dct:license: "see the data use agreement" is not an IRI',
        'dcat:spatialResolutionInMeters: "fine" is not a decimal number',
        'dcat:distribution / dcat:byteSize: "1.5 GB" is not a non-negative integer',
    ]
    assert sorted(problems) == sorted(expected)
    profile = get_profile()
    profile.parse(load(DATA / "eucaim" / "eucaim-bad-values.ttl"), URIRef(DS + "messy"), "o")
    assert sorted(profile.last_problems) == sorted(expected)


def test_blank_node_dataset_without_identifier_gets_a_stable_one() -> None:
    doc = b"""@prefix dcat: <http://www.w3.org/ns/dcat#> .
    @prefix dct: <http://purl.org/dc/terms/> .
    [] a dcat:Dataset ; dct:title "Anonymous"@en ;
       dcat:distribution [ dcat:accessURL <http://a> ] ."""
    profile = get_profile()
    results = []
    for _ in range(2):
        graph = parse_rdf(doc, filename="x.ttl")
        [node] = profile.dataset_nodes(graph)
        assert isinstance(node, BNode)
        results.append(profile.parse_with_problems(graph, node, "o"))
    (first, problems), (second, _) = results
    assert first.identifier == second.identifier and first.identifier.startswith("urn:sha256:")
    assert first.graph == second.graph
    assert any("dct:identifier" in p for p in problems)
    assert isomorphic(profile.serialise(first), parse_rdf(doc, filename="x.ttl"))


# -- serialise ----------------------------------------------------------------------------------


def _without_minted(ds: Dataset) -> dict[str, object]:
    data = asdict(ds)
    data.pop("graph")
    data["fields"] = copy.deepcopy(data["fields"])
    for extra in data["fields"].get("distributions", []):
        extra.pop("iri", None)
    if not any(data["fields"].get("distributions", [])):
        data["fields"].pop("distributions", None)
    return data


def _drop_default_types(value: object) -> object:
    if isinstance(value, dict):
        return {k: _drop_default_types(v) for k, v in value.items() if k != "types"}
    if isinstance(value, list):
        return [_drop_default_types(v) for v in value]
    return value


@pytest.mark.parametrize("path", [CATALOGUE, DATA / "eucaim" / "eucaim-glioblastoma.jsonld",
                                  DATA / "health-ri" / "example-dataset.ttl"],
                         ids=lambda p: p.name)
def test_serialise_without_graph_builds_an_equivalent_description(path: Path) -> None:
    profile = get_profile()
    graph = load(path, profile)
    for node in profile.dataset_nodes(graph):
        original = profile.parse(graph, node, "org-1")
        authored = replace(original, graph=None)
        out = profile.serialise(authored)
        assert (None, RDF.type, DCAT.Dataset) in out
        [again_node] = profile.dataset_nodes(out)
        again = profile.parse(out, again_node, "org-1")
        assert _drop_default_types(_without_minted(again)) == \
            _drop_default_types(_without_minted(original))


def test_json_authored_dataset_gets_an_iri_under_the_base_uri() -> None:
    ds = Dataset(
        identifier="lung ct/2024",
        organisation_id="o",
        title={"en": "Lung CT", "und": "Lung CT (no language)"},
        keywords=["lung"],
        countries=["ES", "PT"],
        conditions=["snomed:93880001", "http://snomed.info/id/254637007"],
        health_categories=["https://example.org/hc/IMAGING"],
        number_of_individuals=10,
        number_of_studies=12,
        min_age=50,
        temporal_start=date(2019, 1, 1),
        temporal_end=date(2023, 12, 31),
        issued=datetime(2024, 1, 2, tzinfo=UTC),
        distributions=[Distribution(access_url="https://example.org/a",
                                    media_type="application/dicom", format="DICOM")],
    )
    profile = get_profile()
    graph = profile.serialise(ds, base_uri="https://catalogue.example.org/")
    node = URIRef("https://catalogue.example.org/datasets/lung%20ct%2F2024")
    assert (node, DCT.identifier, Literal("lung ct/2024")) in graph
    assert (node, DCT.title, Literal("Lung CT (no language)")) in graph
    assert (node, DCT.spatial,
            URIRef("http://publications.europa.eu/resource/authority/country/PRT")) in graph
    assert (node, EUCAIM.hasCondition, Literal("snomed:93880001")) in graph
    assert (node, EUCAIM.hasCondition, URIRef("http://snomed.info/id/254637007")) in graph
    assert (node, HEALTHDCATAP.numberOfUniqueIndividuals, None) in graph
    assert (node, DCT.issued, Literal("2024-01-02", datatype=URIRef(
        "http://www.w3.org/2001/XMLSchema#date"))) in graph
    dist = URIRef(f"{node}/distributions/1")
    assert (dist, DCAT.mediaType,
            URIRef("https://www.iana.org/assignments/media-types/application/dicom")) in graph
    again = profile.parse(graph, node, "o")
    for name in ("title", "number_of_individuals", "number_of_studies", "min_age",
                 "temporal_start", "temporal_end", "issued"):
        assert getattr(again, name) == getattr(ds, name), name
    for name in ("keywords", "countries", "conditions", "health_categories"):
        # RDF values are unordered: lists come back IRIs first, then text, each sorted
        assert sorted(getattr(again, name)) == sorted(getattr(ds, name)), name
    assert again.distributions == ds.distributions


def test_serialise_rewrites_only_what_changed() -> None:
    profile = get_profile()
    graph = load(CATALOGUE, profile)
    node = URIRef(DS + "procancer-mri")
    description = profile.description(graph, node)
    ds = profile.parse(description, node, "o")
    edited = replace(ds, title={"en": "New title"}, countries=["GR"], min_age=None,
                     conditions=[EU + "CLIN1000075"],
                     aggregates={"number_of_individuals": 1510, "modalities": [EU + "IMG1"]})
    out = profile.serialise(edited)
    assert set(out.objects(node, DCT.title)) == {Literal("New title", lang="en")}
    assert set(out.objects(node, DCT.spatial)) == {
        URIRef("http://publications.europa.eu/resource/authority/country/GRC")}
    assert (node, HEALTHDCATAP.minTypicalAge, None) not in out
    assert (node, HEALTHDCATAP.hasCodeValues, None) not in out  # "ICD-10: C61" was dropped
    assert set(out.objects(node, HEALTHDCATAP.numberOfUniqueIndividuals)) == {
        Literal("1510", datatype=URIRef("http://www.w3.org/2001/XMLSchema#nonNegativeInteger"))}
    assert set(out.objects(node, EUCAIM.hasImageModality)) == {URIRef(EU + "IMG1")}
    # everything else is untouched, byte for byte
    changed = {DCT.title, DCT.spatial, HEALTHDCATAP.minTypicalAge, HEALTHDCATAP.hasCodeValues,
               HEALTHDCATAP.numberOfUniqueIndividuals, EUCAIM.hasImageModality}
    for s, p, o in description:
        if s == node and p in changed:
            continue
        assert (s, p, o) in out or isinstance(s, BNode) or isinstance(o, BNode)
    kept = profile.parse(out, node, "o")
    assert kept.fields["publisher"] == ds.fields["publisher"]
    assert kept.distributions == ds.distributions
    assert kept.number_of_individuals == 1510


def test_removing_and_adding_distributions() -> None:
    profile = get_profile()
    graph = load(CATALOGUE, profile)
    node = URIRef(DS + "breast-mg")
    ds = profile.parse(graph, node, "o")
    extras = ds.fields["distributions"]
    edited = replace(
        ds,
        distributions=[ds.distributions[1], Distribution(access_url="https://example.org/new")],
        fields={**ds.fields, "distributions": [extras[1], {}]},
    )
    out = profile.serialise(edited)
    again = profile.parse(out, node, "o")
    assert sorted(d.access_url or "" for d in again.distributions) == [
        "https://example.org/new", "https://negotiator.eucaim.cancerimage.eu/collection/breast-mg"]
    assert (None, DCAT.downloadURL, None) not in out  # the removed sample left no orphans


def test_generated_catalogue_parses_the_same_with_both_engines() -> None:
    from catalogue.dcat import formats
    from tests.unit.dcat.bench_parse import generate

    data = generate(20)
    profile = get_profile()
    results = []
    for engine in ["rdflib", "oxigraph"] if formats.oxigraph_available() else ["rdflib"]:
        graph = profile.canonicalise(parse_rdf(data, content_type="text/turtle", engine=engine))
        nodes = profile.dataset_nodes(graph)
        assert len(nodes) == 20
        results.append([asdict(profile.parse(profile.description(graph, n), n, "o"))
                        for n in nodes])
    assert all(r == results[0] for r in results)
    second = next(r for r in results[0] if r["identifier"] == "ds-1")
    # the generator writes HealthDCAT-AP in its w3id namespace
    assert second["number_of_studies"] == 7 and second["number_of_individuals"] == 3
    assert second["countries"] == ["ES"] and second["modalities"] == [EU + "IMG1000022"]
