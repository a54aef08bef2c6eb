"""Both engines loaded with the same documents, for suites that compare them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from catalogue.search.base import SearchBackend, Upsert
from catalogue.search.mappings import load_definition
from catalogue.search.registry import create_backend
from tests.conftest import make_config

Engines = dict[str, tuple[SearchBackend, str]]


@contextmanager
def loaded_engines(folder: Path, opensearch_urls: list[str], index: str,
                   docs: list[dict[str, Any]]) -> Iterator[Engines]:
    """tantivy and OpenSearch (own index prefix), each with ``docs`` in a fresh ``index``;
    yields ``{engine: (backend, alias)}`` and drops the indices afterwards."""
    prefix = f"{index[:4]}{os.getpid()}-{folder.name[-10:]}-".lower().replace("_", "-")
    backends = {
        "tantivy": create_backend(make_config(folder / "t", "postgresql://unused/x")),
        "opensearch": create_backend(make_config(
            folder / "o", "postgresql://unused/x", search_url=",".join(opensearch_urls),
            search_index_prefix=prefix, search_timeout=60.0)),
    }
    out: Engines = {}
    try:
        for name, backend in backends.items():
            physical = backend.ensure_index(load_definition(index))
            for start in range(0, len(docs), 250):  # small requests: CI machines are busy
                result = backend.bulk(physical, [Upsert(d["id"], d)
                                                 for d in docs[start:start + 250]])
                assert not result.errors, result.errors[:3]
            backend.refresh(physical)
            out[name] = (backend, backend.logical_name(index))
        yield out
    finally:
        for backend in backends.values():
            alias = backend.logical_name(index)
            for physical in backend.list_indices(alias):
                try:  # the current index cannot be dropped: park the alias elsewhere first
                    backend.switch_alias(backend.logical_name("parked"), physical)
                    backend.drop_index(physical)
                except Exception:
                    pass
            backend.close()
