"""One contract, every backend: embedded tantivy and a real 3-node OpenSearch cluster."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from catalogue.config import Config
from catalogue.errors import CatalogueError, NotFound, ValidationError
from catalogue.search.backends import opensearch_backend
from catalogue.search.backends.reads import EngineHTTPError
from catalogue.search.base import Delete, SearchBackend, Upsert
from catalogue.search.indexer import sort_key
from catalogue.search.mappings import load_definition
from catalogue.search.query import Range, SearchRequest, Terms
from catalogue.search.registry import create_backend
from tests.conftest import make_config

DOCS: list[dict[str, Any]] = [
    {
        "id": "d1",
        "organisation_id": "org-a",
        "status": "published",
        "identifier": "lung-1",
        "title": "Lung cancer screening CT",
        "description": "Low-dose chest CT, Lungenkrebs",
        "keywords_text": "lung screening",
        "keywords": ["lung", "screening"],
        "modalities": ["CT"],
        "body_parts": ["CHEST"],
        "countries": ["ES"],
        "number_of_individuals": 2140,
        "min_age": 50,
        "max_age": 80,
        "modified": "2024-01-05T10:00:00+00:00",
    },
    {
        "id": "d2",
        "organisation_id": "org-b",
        "status": "published",
        "identifier": "gbm",
        "title": "Glioblastoma MRI",
        "description": "Brain MRI of glioblastoma patients",
        "keywords": ["brain"],
        "modalities": ["MR"],
        "body_parts": ["BRAIN"],
        "countries": ["DE"],
        "number_of_individuals": 412,
        "min_age": 25,
        "max_age": 85,
    },
    {
        "id": "d3",
        "organisation_id": "org-a",
        "status": "draft",
        "identifier": "pet",
        "title": "NSCLC PET/CT radiomics",
        "description": "Café crème lung PET",
        "modalities": ["PT", "CT"],
        "body_parts": ["CHEST"],
        "countries": ["ES", "PT"],
        "number_of_individuals": 420,
    },
    {
        "id": "d4",
        "organisation_id": "org-c",
        "status": "published",
        "identifier": "breast",
        "title": "Breast DCE-MRI and mammography",
        "description": "Breast cancer imaging",
        "modalities": ["MG", "MR"],
        "body_parts": ["BREAST"],
        "countries": ["IT"],
        "number_of_individuals": 980,
        "min_age": 30,
        "max_age": 75,
    },
]


@pytest.fixture(params=["tantivy", pytest.param("opensearch", marks=pytest.mark.opensearch)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SearchBackend]:
    if request.param == "tantivy":
        config = make_config(tmp_path, "postgresql://unused/x")
    else:
        urls = request.getfixturevalue("opensearch_urls")
        config = make_config(
            tmp_path,
            "postgresql://unused/x",
            search_url=",".join(urls),
            search_index_prefix=f"c{os.getpid()}-{tmp_path.name[-12:]}-".lower().replace("_", "-"),
        )
    b = create_backend(config)
    assert b.name == request.param
    yield b
    for name in b.list_indices(b.logical_name("datasets")):
        try:
            b.switch_alias(b.logical_name("other"), name)
            b.drop_index(name)
        except Exception:
            pass
    b.close()


@contextlib.contextmanager
def reading(read: Callable[[], Any]) -> Iterator[tuple[set[Any], list[BaseException]]]:
    """Calls ``read`` over and over on another thread while the block runs; yields the set of
    what it returned and the list of what it raised (complete once the block has ended)."""
    results: set[Any] = set()
    errors: list[BaseException] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                results.add(read())
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield results, errors
    finally:
        stop.set()
        thread.join()


def _keyed(doc: dict[str, Any]) -> dict[str, Any]:
    """A document with the sort keys the indexer adds."""
    return {**doc, "individuals_key": sort_key(doc.get("number_of_individuals"), doc["id"])}


@pytest.fixture
def loaded(backend: SearchBackend) -> tuple[SearchBackend, str]:
    definition = load_definition("datasets")
    physical = backend.ensure_index(definition)
    result = backend.bulk(physical, [Upsert(d["id"], _keyed(d)) for d in DOCS])
    assert result.applied == len(DOCS) and not result.errors
    backend.refresh(physical)
    return backend, backend.logical_name("datasets")


def test_ping_reports_engine(backend: SearchBackend) -> None:
    details = backend.ping()
    assert details["engine"] == backend.name
    assert details["version"]


def test_count_and_get(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    assert backend.count(alias) == 4
    assert backend.count(alias, [Terms("status", ("published",))]) == 3
    assert backend.count(alias, [Terms("modalities", ("CT",)), Terms("countries", ("ES",))]) == 2
    assert backend.count(alias, [Range("number_of_individuals", gte=500)]) == 2
    doc = backend.get(alias, "d1")
    assert doc is not None
    assert doc["modalities"] == ["CT"] and doc["min_age"] == [50]
    assert doc["modified"] == ["2024-01-05T10:00:00+00:00"]
    assert backend.get(alias, "nope") is None


def test_upsert_is_idempotent_and_delete_removes(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    changed = dict(DOCS[1], title="Glioblastoma MRI (updated)")
    backend.bulk(alias, [Upsert("d2", changed), Upsert("d2", changed)])
    backend.bulk(alias, [Delete("d4"), Delete("d4"), Delete("never-existed")])
    backend.refresh(alias)
    assert backend.count(alias) == 3
    result = backend.search(alias, SearchRequest(text="updated"))
    assert result.ids == ["d2"]


def test_text_search_folds_case_and_accents(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    assert set(backend.search(alias, SearchRequest(text="LUNG")).ids) == {"d1", "d3"}
    assert backend.search(alias, SearchRequest(text="cafe")).ids == ["d3"]
    assert backend.search(alias, SearchRequest(text="lungenkrebs")).ids == ["d1"]
    # every word must match somewhere
    assert backend.search(alias, SearchRequest(text="lung brain")).total == 0


def test_filters_facets_and_visibility(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    visible = SearchRequest(
        any_of=((Terms("status", ("published",)), Terms("organisation_id", ("org-a",))),),
        filters=(Terms("modalities", ("CT", "MR")),),
        facets=("modalities", "countries"),
        sort="-number_of_individuals",
    )
    result = backend.search(alias, visible)
    assert result.total == 4  # d1, d2, d4 published; d3 is org-a's own draft
    assert result.ids == ["d1", "d4", "d3", "d2"]
    assert dict(result.facets["modalities"]) == {"CT": 2, "MR": 2, "PT": 1, "MG": 1}
    public = backend.search(
        alias, SearchRequest(filters=(Terms("status", ("published",)),), facets=("countries",))
    )
    assert public.total == 3
    assert dict(public.facets["countries"]) == {"ES": 1, "DE": 1, "IT": 1}


def test_paging_is_stable(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    request = SearchRequest(sort="number_of_individuals", size=2)
    first = backend.search(alias, request)
    second = backend.search(alias, SearchRequest(sort="number_of_individuals", size=2, offset=2))
    assert first.total == second.total == 4
    assert first.ids + second.ids == ["d2", "d3", "d4", "d1"]


def test_unknown_fields_are_refused(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    with pytest.raises(ValidationError):
        backend.search(alias, SearchRequest(filters=(Terms("secret_field", ("x",)),)))
    with pytest.raises(ValidationError):
        backend.search(alias, SearchRequest(sort="title"))


def test_versioned_rebuild_switches_alias_atomically(loaded: tuple[SearchBackend, str]) -> None:
    backend, alias = loaded
    old = backend.current_index(alias)
    assert old is not None
    new = backend.create_index(load_definition("datasets"))
    assert new != old and new.startswith(alias + f"-v{load_definition('datasets').version}-")
    backend.bulk(new, [Upsert(d["id"], d) for d in DOCS[:2]])
    backend.refresh(new)
    with reading(lambda: backend.count(alias)) as (counts, errors):
        backend.switch_alias(alias, new)
    assert not errors
    assert counts <= {4, 2}
    assert backend.current_index(alias) == new
    assert backend.count(alias) == 2
    assert set(backend.list_indices(alias)) >= {old, new}
    with pytest.raises(ValidationError):
        backend.drop_index(new)  # the current index is protected
    backend.drop_index(old)
    assert old not in backend.list_indices(alias)


def test_missing_index_is_not_found(backend: SearchBackend) -> None:
    with pytest.raises(NotFound):
        backend.count(backend.logical_name("does-not-exist"))


@pytest.mark.opensearch
def test_cluster_has_three_nodes_and_green_health(opensearch_urls: list[str]) -> None:
    with urllib.request.urlopen(
        opensearch_urls[0] + "/_cluster/health?wait_for_status=green&timeout=60s", timeout=70
    ) as r:
        health = json.loads(r.read())
    assert health["number_of_nodes"] == 3
    assert health["status"] == "green"
    assert len(opensearch_urls) == 3


@pytest.mark.opensearch
def test_replicas_are_allocated_on_other_nodes(tmp_path: Path, opensearch_urls: list[str]) -> None:
    config = make_config(
        tmp_path,
        "postgresql://unused/x",
        search_url=",".join(opensearch_urls),
        search_index_prefix=f"r{os.getpid()}-",
        search_replicas=1,
    )
    backend = create_backend(config)
    physical = backend.create_index(load_definition("datasets"))
    try:
        with urllib.request.urlopen(
            f"{opensearch_urls[0]}/_cluster/health/{physical}?wait_for_status=green&timeout=60s",
            timeout=70,
        ) as r:
            assert json.loads(r.read())["status"] == "green"
        with urllib.request.urlopen(
            f"{opensearch_urls[0]}/_cat/shards/{physical}?format=json", timeout=10
        ) as r:
            shards = json.loads(r.read())
        assert {s["prirep"] for s in shards} == {"p", "r"}
        assert len({s["node"] for s in shards}) == 2
        assert all(s["state"] == "STARTED" for s in shards)
    finally:
        backend.drop_index(physical)
        backend.close()


def test_auto_backend_selection(tmp_path: Path) -> None:
    config: Config = make_config(tmp_path, "postgresql://unused/x")
    assert create_backend(config).name == "tantivy"


def test_tantivy_readers_survive_alias_switches_and_drops_by_another_process(
        tmp_path: Path) -> None:
    """A reader (another process: its own backend object) never fails while a rebuild switches
    the alias and drops the old index under it."""
    config = make_config(tmp_path, "postgresql://unused/x")
    writer, reader = create_backend(config), create_backend(config)
    definition = load_definition("datasets")
    alias = writer.logical_name("datasets")
    docs = [Upsert(d["id"], _keyed(d)) for d in DOCS]
    first = writer.create_index(definition)
    writer.bulk(first, docs)
    writer.switch_alias(alias, first)
    errors: list[BaseException] = []
    searches = 0
    stop = threading.Event()

    def read() -> None:
        nonlocal searches
        while not stop.is_set():
            try:
                assert reader.search(alias, SearchRequest(text="lung")).total == 2
                searches += 1
            except BaseException as exc:
                errors.append(exc)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for _ in range(25):
            old = writer.current_index(alias)
            new = writer.create_index(definition)
            writer.bulk(new, docs)
            writer.switch_alias(alias, new)
            assert old is not None
            writer.drop_index(old)
    finally:
        stop.set()
        thread.join()
        writer.close()
        reader.close()
    assert not errors, errors[:3]
    assert searches > 25


@contextlib.contextmanager
def _writer_and_reader(tmp_path: Path, urls: list[str], tag: str
                       ) -> Iterator[tuple[SearchBackend, SearchBackend, str,
                                           Callable[[list[dict[str, Any]]], str]]]:
    """Two OpenSearch backends on one cluster, as two processes have (a writer, a reader), the
    datasets alias, and ``load(docs)``: a new physical index of ``docs`` the alias is switched
    to (its name returned). Every index made is dropped afterwards."""
    config = make_config(tmp_path, "postgresql://unused/x", search_url=",".join(urls),
                         search_index_prefix=f"{tag}{os.getpid()}-{tmp_path.name[-12:]}-".lower()
                         .replace("_", "-"))
    writer, reader = create_backend(config), create_backend(config)
    definition = load_definition("datasets")
    alias = writer.logical_name("datasets")

    def load(docs: list[dict[str, Any]]) -> str:
        physical = writer.create_index(definition)
        writer.bulk(physical, [Upsert(d["id"], _keyed(d)) for d in docs])
        writer.refresh(physical)
        writer.switch_alias(alias, physical)
        return physical

    try:
        yield writer, reader, alias, load
    finally:
        for physical in writer.list_indices(alias):
            with contextlib.suppress(Exception):
                writer.switch_alias(writer.logical_name("parked"), physical)
                writer.drop_index(physical)
        writer.close()
        reader.close()


@pytest.mark.opensearch
def test_opensearch_readers_follow_alias_switches_and_drops_by_another_process(
        tmp_path: Path, opensearch_urls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Searches go to the physical index the alias named when last read (``ALIAS_TTL``): a
    reader (another process: its own backend object) whose index was dropped reads the alias
    again and answers from the new index at once; one whose index was only switched away
    from follows when the alias is read again. Nothing fails meanwhile."""
    with _writer_and_reader(tmp_path, opensearch_urls, "r") as (writer, reader, alias, load):
        first = load(DOCS)
        sent: list[str] = []
        send, post = reader._send, reader._post  # type: ignore[attr-defined]

        def counted(method: str, path: str, *args: Any) -> Any:
            sent.append(path)
            return send(method, path, *args)

        def counted_read(path: str, body: bytes) -> Any:  # searches: the read connections
            sent.append(path)
            return post(path, body)

        monkeypatch.setattr(reader, "_send", counted)
        monkeypatch.setattr(reader, "_post", counted_read)
        for _ in range(5):
            assert reader.search(alias, SearchRequest()).total == 4  # the reader knows `first`
        # one round trip per search, after the first reading of the alias
        assert [p.split("?")[0] for p in sent] == [f"/_alias/{alias}"] + [f"/{first}/_search"] * 5
        second = load(DOCS[:2])
        writer.drop_index(first)
        assert reader.search(alias, SearchRequest()).total == 2  # 404, alias read again
        # switched away from, not dropped: followed when the alias is next read
        monkeypatch.setattr(opensearch_backend, "ALIAS_TTL", 0.3)
        assert reader.search(alias, SearchRequest()).total == 2
        load(DOCS[:3])
        time.sleep(0.35)
        assert reader.search(alias, SearchRequest()).total == 3
        writer.drop_index(second)
        # rebuilds with drops under a searching reader: never an error, never a mixed answer
        with reading(lambda: reader.search(alias, SearchRequest()).total) as (totals, errors):
            for n in range(8):
                old = writer.current_index(alias)
                load(DOCS[: 1 + n % 4])
                assert old is not None
                writer.drop_index(old)
        assert not errors, errors[:3]
        assert totals <= {1, 2, 3, 4} and len(totals) > 1
        assert reader.search(alias, SearchRequest()).total == 4  # the last load: DOCS[:4]


class _Refused:
    """A read answered as an index that is being closed answers some: 400, "this Analyzer is
    closed" (seen under rebuilds)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def result(self) -> Any:
        raise EngineHTTPError(400, {"error": {"reason": "failed to create query: this "
                                              "Analyzer is closed"}})

    def close(self) -> None:
        pass


@pytest.mark.opensearch
def test_a_read_rejected_by_an_index_going_away_goes_to_the_alias_new_index(
        tmp_path: Path, opensearch_urls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader that still sends to an index the alias no longer names, which rejects the read
    as it closes, reads the alias again and answers from the new index; a rejection by the
    index the alias names stands (an error, not a retry loop)."""
    with _writer_and_reader(tmp_path, opensearch_urls, "j") as (_, reader, alias, load):
        first = load(DOCS)
        assert reader.search(alias, SearchRequest()).total == 4  # the reader knows `first`
        second = load(DOCS[:2])
        refusing = {first}
        post = reader._post  # type: ignore[attr-defined]

        def refused(path: str, body: bytes) -> Any:
            if path.split("/")[1] in refusing:
                return _Refused(path)
            return post(path, body)

        monkeypatch.setattr(reader, "_post", refused)
        assert reader.search(alias, SearchRequest()).total == 2  # from `second`
        refusing.add(second)
        with pytest.raises(CatalogueError, match="rejected"):
            reader.search(alias, SearchRequest())


def test_fill_loads_lazily_made_batches(backend: SearchBackend) -> None:
    """What a rebuild does: a new physical index loaded from batches made while the engine takes
    the earlier ones; an id that comes again replaces its document, a delete removes it."""
    physical = backend.create_index(load_definition("datasets"))
    made: list[int] = []

    def batches() -> Iterator[list[Upsert | Delete]]:
        made.append(1)
        yield [Upsert(d["id"], _keyed(d)) for d in DOCS[:2]]
        made.append(2)
        again = dict(DOCS[0], title="Lung cancer screening CT, second release")
        yield [Upsert("d1", _keyed(again)), *(Upsert(d["id"], _keyed(d)) for d in DOCS[2:])]
        made.append(3)
        yield [Delete("d4"), Delete("never-existed")]

    result = backend.fill(physical, batches())
    assert made == [1, 2, 3]
    assert result.applied == 7 and not result.errors
    assert backend.count(physical) == 3  # d1 once, d2, d3; d4 deleted
    assert backend.search(physical, SearchRequest(text="second release")).ids == ["d1"]
    assert backend.count(physical, [Terms("modalities", ("MG",))]) == 0
    assert backend.get(physical, "d2") is not None


def test_tantivy_fill_commits_once_and_rolls_back_on_error(tmp_path: Path) -> None:
    """tantivy: nothing of a fill is visible or kept until it ends; a failure while a batch is
    being made leaves the new index empty and its writer usable."""
    backend = create_backend(make_config(tmp_path, "postgresql://unused/x"))
    try:
        physical = backend.create_index(load_definition("datasets"))
        seen_midway: list[int] = []

        def failing() -> Iterator[list[Upsert | Delete]]:
            yield [Upsert(d["id"], _keyed(d)) for d in DOCS[:2]]
            backend.refresh(physical)
            seen_midway.append(backend.count(physical))
            raise RuntimeError("the database went away")

        with pytest.raises(RuntimeError, match="went away"):
            backend.fill(physical, failing())
        assert seen_midway == [0]
        backend.refresh(physical)
        assert backend.count(physical) == 0
        assert backend.fill(physical, [[Upsert(d["id"], _keyed(d)) for d in DOCS]]).applied == 4
        assert backend.count(physical) == 4
    finally:
        backend.close()


def test_tantivy_fill_replaces_the_item_documents_of_a_subject_given_twice(
        tmp_path: Path) -> None:
    backend = create_backend(make_config(tmp_path, "postgresql://unused/x"))
    try:
        physical = backend.create_index(load_definition("subjects"))

        def subject(studies: int) -> dict[str, Any]:
            return {"id": "s1", "dataset_id": "ds", "sex": "female", "study_count": studies,
                    "studies": [{"rank": n, "modalities_path": ["CT"], "body_parts_path":
                                 ["CHEST"], "age_band": 60, "year": 2020}
                                for n in range(1, studies + 1)]}

        backend.fill(physical, [[Upsert("s1", subject(3))], [Upsert("s1", subject(1))]])
        assert backend.count(physical) == 1  # parents only
        searcher = backend._opened(physical).index.searcher()  # type: ignore[attr-defined]
        assert searcher.num_docs == 2  # the subject and its one study
    finally:
        backend.close()


@pytest.mark.opensearch
def test_opensearch_fill_restores_the_index_settings_even_on_failure(
        opensearch_urls: list[str], tmp_path: Path) -> None:
    """No refreshes and no replicas while an index loads; the index's own settings are back
    afterwards, also when making a batch fails (the caller then drops the index)."""
    config = make_config(tmp_path, "postgresql://unused/x", search_url=",".join(opensearch_urls),
                         search_index_prefix=f"fill{os.getpid()}-", search_replicas=1)
    backend = create_backend(config)
    physical = backend.create_index(load_definition("datasets"))

    def settings() -> tuple[Any, Any]:
        found = backend._request("GET", f"/{physical}/_settings")  # type: ignore[attr-defined]
        own = found[physical]["settings"]["index"]
        return own.get("refresh_interval"), own.get("number_of_replicas")

    try:
        before = settings()
        assert before[1] == "1"
        during: list[tuple[Any, Any]] = []

        def failing() -> Iterator[list[Upsert | Delete]]:
            yield [Upsert(d["id"], _keyed(d)) for d in DOCS[:2]]
            during.append(settings())
            raise RuntimeError("the database went away")

        with pytest.raises(RuntimeError, match="went away"):
            backend.fill(physical, failing())
        assert during == [("-1", "0")] and settings() == before
        assert backend.fill(physical, [[Upsert(d["id"], _keyed(d)) for d in DOCS]]).applied == 4
        assert settings() == before
        assert backend.count(physical) == 4  # refreshed at the end
    finally:
        backend.drop_index(physical)
        backend.close()


@pytest.mark.opensearch
def test_opensearch_keeps_a_connection_per_concurrent_request(
        opensearch_urls: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Serving threads search at the same time: each keeps its connection to the node for the
    next request instead of opening and dropping one (urllib3 keeps one per node by default)."""
    config = make_config(tmp_path, "postgresql://unused/x", search_url=opensearch_urls[0],
                         search_index_prefix=f"pool{os.getpid()}-")
    backend = create_backend(config)
    physical = backend.create_index(load_definition("datasets"))
    try:
        backend.fill(physical, [[Upsert(d["id"], _keyed(d)) for d in DOCS]])
        barrier = threading.Barrier(6)
        errors: list[BaseException] = []

        def searcher() -> None:
            try:
                for _ in range(10):
                    barrier.wait(timeout=30)
                    assert backend.count(physical) == 4
            except BaseException as exc:
                errors.append(exc)

        caplog.set_level("WARNING", logger="urllib3.connectionpool")
        threads = [threading.Thread(target=searcher) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors
        assert not [r for r in caplog.records if "pool is full" in r.getMessage()]
    finally:
        backend.drop_index(physical)
        backend.close()
