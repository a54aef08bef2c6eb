"""Build the configured search backend."""

from __future__ import annotations

import logging

from catalogue.config import Config
from catalogue.plugins import load_plugin
from catalogue.search.base import SearchBackend

log = logging.getLogger(__name__)


def backend_name(config: Config) -> str:
    """The backend ``auto`` resolves to (may contact the search URL to tell ES from OpenSearch)."""
    if config.search_backend != "auto":
        return config.search_backend
    if not config.search_url:
        return "tantivy"
    from catalogue.errors import SearchUnavailable
    from catalogue.search.backends.opensearch_backend import detect_engine

    first = config.search_url.split(",")[0].strip()
    try:
        return detect_engine(
            first, timeout=config.search_timeout, verify=config.search_verify_certs
        )
    except SearchUnavailable:
        # Start anyway: /readyz reports the engine as down, writes go to the outbox, and the
        # REST calls of the OpenSearch client work against either engine once it is back.
        log.warning("search engine unreachable at startup; assuming OpenSearch")
        return "opensearch"


def create_backend(config: Config) -> SearchBackend:
    cls = load_plugin("search", backend_name(config))
    backend: SearchBackend = cls.from_config(config)
    return backend
