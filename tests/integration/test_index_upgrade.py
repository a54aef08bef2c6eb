"""A search index built from an older definition version is rebuilt at startup."""

from __future__ import annotations

from catalogue.model.identity import SYSTEM, Organisation
from catalogue.runtime import Runtime
from catalogue.search.indexer import index_version
from catalogue.search.mappings import load_definition
from catalogue.search.query import SearchRequest, Terms


def test_older_index_version_is_rebuilt(runtime: Runtime) -> None:
    rt = runtime
    assert rt.search is not None and rt.indexer is not None
    rt.identities.create_organisation(SYSTEM, Organisation("org-u", "U", "ES"))
    from catalogue.model.dataset import Dataset, DatasetStatus

    rt.datasets.save(SYSTEM, Dataset(identifier="u1", organisation_id="org-u",
                                     title={"en": "Lung CT"}, conditions=["C34.9"],
                                     status=DatasetStatus.PUBLISHED))
    rt.indexer.drain()
    alias = rt.search.logical_name("datasets")
    old = rt.search.create_index(load_definition("datasets", 1))  # as an older release left it
    rt.search.switch_alias(alias, old)
    assert index_version(old) == 1
    rt.indexer.ensure_indices()
    current = rt.search.current_index(alias)
    assert current is not None and current != old
    assert index_version(current) == load_definition("datasets").version
    found = rt.search.search(alias, SearchRequest(
        filters=(Terms("conditions_path", ("snomed:93880001",)),)))
    assert found.total == 1
    assert old not in rt.search.list_indices(alias)
