"""Elasticsearch 8/9 and OpenSearch 2/3 backends.

Both speak the same REST API for everything the catalogue needs, so the logic lives once in
:class:`RestSearchBackend`, with request bodies from :mod:`es_dsl`. The two subclasses differ only
in the official client they use to send a request and in how its errors look.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson

from catalogue.errors import CatalogueError, NotFound, SearchUnavailable, ValidationError
from catalogue.search.analysis import words
from catalogue.search.backends import es_dsl
from catalogue.search.backends.reads import EngineHTTPError, ReadPool, SentRead
from catalogue.search.base import (
    Action,
    BulkResult,
    Delete,
    PendingCounts,
    SearchBackend,
    Upsert,
)
from catalogue.search.mappings import IndexDefinition, load_definition
from catalogue.search.query import CountRequest, SearchRequest, SearchResult, sort_field

log = logging.getLogger(__name__)


def _json(value: Any) -> bytes:
    """UTF-8 JSON, as ``json.dumps(ensure_ascii=False)`` writes it but faster; integers
    beyond 64 bits, which orjson refuses, through the standard library."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, ensure_ascii=False).encode()


#: connections kept per node (the serving threads and a load's requests share them)
POOL_MAXSIZE = 16

#: bulk requests in flight while an index loads (see ``RestSearchBackend.fill``)
FILL_REQUESTS = 2

#: seconds searches and counts reuse the physical index an alias named without asking the
#: engine again (one round trip less per request); a request to an index dropped meanwhile (a
#: rebuild switched the alias) reads the alias again at once and is sent again
ALIAS_TTL = 5.0

#: searches and counts: exact or an error (by default a search whose shards partly failed
#: answers with what the others found)
_SEARCH = "/_search?allow_partial_search_results=false"

_PHYSICAL = re.compile(r"^(?P<logical>.+)-v(?P<version>\d+)-(?P<stamp>\d{20})$")


def _mapped(status: int, method: str, path: str, exc: Exception,
            logged: bool = True) -> CatalogueError:
    """The catalogue's error for an engine's HTTP error status (a rejection is logged unless
    ``logged`` is off: the caller logs it if it stands)."""
    if status == 404:
        return NotFound("search index not found")
    if status == 429 or status >= 500:
        return SearchUnavailable()
    if logged:
        log.error("search engine rejected %s %s: %s", method, path, exc)
    return _Rejected(f"search engine rejected {method} {path}: {exc}")


class _Rejected(CatalogueError):
    """The engine refused a request (4xx); ``detail`` says what it said, for the log."""

    def __init__(self, detail: str) -> None:
        super().__init__("the search engine rejected a request")
        self.detail = detail


def _body(value: Any) -> bytes:
    return value if isinstance(value, bytes) else _json(value)


class _Reading:
    """A read sent (:meth:`RestSearchBackend._start_read`); :meth:`result` gives the definition
    its body was made for and the engine's answer, sending it once more on the alias's new
    index if the one it went to was dropped meanwhile."""

    def __init__(self, backend: RestSearchBackend, index: str, path: str,
                 build: Callable[[IndexDefinition], Any], physical: str,
                 definition: IndexDefinition, sent: SentRead) -> None:
        self.backend, self.index, self.path, self.build = backend, index, path, build
        self.physical, self.definition, self.sent = physical, definition, sent

    def result(self) -> tuple[IndexDefinition, Any]:
        """An index being dropped answers "not found", "unavailable", or a rejection while it
        closes (a 400 "this Analyzer is closed", seen under a rebuild): if the alias names
        another index by then, the read goes there; else the error stands (a rejection is
        logged then, not before)."""
        try:
            return self._result()
        except _Rejected as exc:
            log.error("%s", exc.detail)
            raise

    def _result(self) -> tuple[IndexDefinition, Any]:
        backend = self.backend
        try:
            return self.definition, backend._answer(self.sent)
        except (NotFound, SearchUnavailable, _Rejected) as exc:
            if self.physical == self.index:
                raise
            stale, error = self.physical, exc
        physical, definition = backend._resolve(self.index, fresh=True)
        if physical == stale:  # the alias still names it: a failure of its own
            if isinstance(error, _Rejected):
                raise error
            raise SearchUnavailable() from None
        return definition, backend._answer(
            backend._post(f"/{physical}{self.path}", _body(self.build(definition))))

    def close(self) -> None:
        self.sent.close()


class RestSearchBackend(SearchBackend):
    """Shared logic; subclasses implement :meth:`_send`."""

    client: Any  # each subclass's official client

    def __init__(
        self,
        urls: list[str],
        prefix: str = "catalogue-",
        shards: int = 1,
        replicas: int = 1,
        timeout: float = 10.0,
        verify_certs: bool = True,
    ) -> None:
        self.urls = urls
        self.prefix = prefix
        self.shards = shards
        self.replicas = replicas
        self.timeout = timeout
        self.verify_certs = verify_certs
        #: alias -> (time.monotonic() when read, physical index, its definition)
        self._physical: dict[str, tuple[float, str, IndexDefinition]] = {}
        #: searches and counts (the official client sends everything else)
        self._reads = ReadPool(urls, timeout, verify_certs, size=POOL_MAXSIZE)

    @classmethod
    def from_config(cls, config: Any) -> RestSearchBackend:
        urls = [u.strip() for u in config.search_url.split(",") if u.strip()]
        return cls(
            urls,
            prefix=config.search_index_prefix,
            shards=config.search_shards,
            replicas=config.search_replicas,
            timeout=config.search_timeout,
            verify_certs=config.search_verify_certs,
        )

    # -- transport ----------------------------------------------------------------------------
    def _send(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        raise NotImplementedError

    def _request(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        try:
            return self._send(method, path, body, params)
        except EngineHTTPError as exc:
            raise _mapped(exc.status, method, path, exc) from None

    # -- names --------------------------------------------------------------------------------
    def logical_name(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def _definition(self, index: str) -> IndexDefinition:
        physical = index
        match = _PHYSICAL.match(index)
        if match is None:
            current = self.current_index(index)
            if current is None:
                raise NotFound(f"search index {index!r} does not exist")
            physical = current
            match = _PHYSICAL.match(physical)
        assert match is not None
        name = match.group("logical")[len(self.prefix) :]
        return load_definition(name, int(match.group("version")))

    def _resolve(self, index: str, fresh: bool = False) -> tuple[str, IndexDefinition]:
        """The physical index behind ``index`` (an alias or already physical) and its
        definition; an alias is read at most every ``ALIAS_TTL`` seconds unless ``fresh``."""
        if _PHYSICAL.match(index):
            return index, self._definition(index)
        now = time.monotonic()
        known = self._physical.get(index)
        if known is not None and not fresh and now - known[0] < ALIAS_TTL:
            return known[1], known[2]
        physical = self.current_index(index)
        if physical is None:
            self._physical.pop(index, None)
            raise NotFound(f"search index {index!r} does not exist")
        definition = self._definition(physical)
        self._physical[index] = (now, physical, definition)
        return physical, definition

    def _read(self, index: str, path: str, build: Callable[[IndexDefinition], Any]
              ) -> tuple[IndexDefinition, Any]:
        """:meth:`_start_read`, then its answer."""
        return self._start_read(index, path, build).result()

    def _start_read(self, index: str, path: str, build: Callable[[IndexDefinition], Any]
                    ) -> _Reading:
        """POST a read (``path``: ``/_search``...) to the physical index behind ``index``, with
        the body ``build`` makes for that index's definition (so that a body always matches
        the mapping it is sent to, even while an upgrade switches the alias to a new
        definition), and return without waiting for the answer (see :mod:`.reads`). If that
        index is gone or going (a rebuild switched the alias and dropped it), the alias is
        read again and the request sent once more when the answer is read. Reads never take
        partial results: an index whose shards are going answers an error, not a count of
        what is left."""
        physical, definition = self._resolve(index)
        return _Reading(self, index, path, build, physical, definition,
                        self._post(f"/{physical}{path}", _body(build(definition))))

    def _post(self, path: str, body: bytes) -> SentRead:
        """Send one read on the read connections (:mod:`.reads`)."""
        return self._reads.send(path, body)

    def _answer(self, sent: SentRead) -> Any:
        """The answer of a read, its errors mapped as :meth:`_request` maps them."""
        try:
            return sent.result()
        except EngineHTTPError as exc:
            raise _mapped(exc.status, "POST", sent.path, exc, logged=False) from None

    def close(self) -> None:
        self._reads.close()
        self.client.close()

    def _forget(self, physical: str) -> None:
        for alias, known in list(self._physical.items()):
            if known[1] == physical:
                self._physical.pop(alias, None)

    # -- contract -----------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        info = self._request("GET", "/")
        health = self._request("GET", "/_cluster/health")
        version = info.get("version", {})
        return {
            "engine": version.get("distribution", "elasticsearch"),
            "version": version.get("number"),
            "cluster": health.get("cluster_name"),
            "status": health.get("status"),
            "nodes": health.get("number_of_nodes"),
        }

    def create_index(self, definition: IndexDefinition) -> str:
        stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S%f")
        physical = f"{self.logical_name(definition.name)}-v{definition.version}-{stamp}"
        body = es_dsl.index_body(definition, self.shards, self.replicas)
        self._request("PUT", f"/{physical}", body)
        self._request(
            "GET",
            f"/_cluster/health/{physical}",
            params={"wait_for_status": "yellow", "timeout": f"{int(self.timeout)}s"},
        )
        return physical

    def current_index(self, logical: str) -> str | None:
        try:
            found = self._request("GET", f"/_alias/{logical}")
        except NotFound:
            return None
        names = sorted(found)
        return names[-1] if names else None

    def switch_alias(self, logical: str, physical: str) -> None:
        actions: list[dict[str, Any]] = [{"add": {"index": physical, "alias": logical}}]
        current = self.current_index(logical)
        if current and current != physical:
            actions.insert(0, {"remove": {"index": current, "alias": logical}})
        self._request("POST", "/_aliases", {"actions": actions})
        self._physical.pop(logical, None)

    def list_indices(self, logical: str) -> list[str]:
        found = self._request("GET", f"/{logical}-v*", params={"expand_wildcards": "open"})
        return sorted(n for n in found if _PHYSICAL.match(n))

    def drop_index(self, physical: str) -> None:
        for logical in {m.group("logical") for m in [_PHYSICAL.match(physical)] if m}:
            if self.current_index(logical) == physical:
                raise ValidationError(f"{physical} is the current index of {logical}")
        self._request("DELETE", f"/{physical}")
        self._forget(physical)

    def bulk(self, index: str, actions: Sequence[Action]) -> BulkResult:
        if not actions:
            return BulkResult()
        return self._send_bulk(self._bulk_body(self._definition(index), index, actions))

    def fill(self, index: str, batches: Iterable[Sequence[Action]]) -> BulkResult:
        """As Elasticsearch and OpenSearch advise for a first load: no replicas and no periodic
        refreshes while the index loads (replicas would analyse every document again, each
        refresh writes a small segment to merge later), the next batch read, built and encoded
        while the engine takes the ones before (``FILL_REQUESTS`` bulk requests in flight: a
        bulk request into one shard runs on one write thread of its node, so one at a time
        leaves the other cores idle). At the end, failure or not, the index's own settings are
        back; the replicas then copy the finished segments instead of indexing, and the load
        waits until they have (or until the timeout)."""
        definition = self._definition(index)
        wanted = ("refresh_interval", "number_of_replicas")
        found = self._request("GET", f"/{index}/_settings",
                              params={"filter_path": f"*.settings.index.{{{','.join(wanted)}}}"})
        own = (found.get(index) or {}).get("settings", {}).get("index", {})
        restore = {name: own.get(name) for name in wanted}
        result = BulkResult()

        def add(done: BulkResult) -> None:
            result.applied += done.applied
            result.errors += done.errors

        self._request("PUT", f"/{index}/_settings",
                      {"index": {"refresh_interval": "-1", "number_of_replicas": 0}})
        try:
            with ThreadPoolExecutor(FILL_REQUESTS, thread_name_prefix="catalogue-fill") as pool:
                pending: deque[tuple[Future[BulkResult], set[str]]] = deque()
                for actions in batches:
                    if not actions:
                        continue
                    body = self._bulk_body(definition, index, actions)
                    ids = {action.id for action in actions}
                    # requests in flight may be applied in any order: a batch that names an id
                    # of one still in flight waits for all of them (the later action wins)
                    overlaps = any(not ids.isdisjoint(other) for _, other in pending)
                    while pending and (overlaps or len(pending) >= FILL_REQUESTS):
                        add(pending.popleft()[0].result())
                    pending.append((pool.submit(self._send_bulk, body), ids))
                while pending:
                    add(pending.popleft()[0].result())
        finally:
            self._request("PUT", f"/{index}/_settings", {"index": restore})
        self.refresh(index)
        self._wait_for_copies(index)
        return result

    def _wait_for_copies(self, index: str) -> None:
        """Until no shard copy of ``index`` is still being made, or the timeout: then the
        copies go on in the background while the primaries serve, which is not an error."""
        params = {"wait_for_no_initializing_shards": "true", "timeout": f"{int(self.timeout)}s"}
        try:
            self._send("GET", f"/_cluster/health/{index}", params=params)
        except EngineHTTPError as exc:
            if exc.status != 408:
                raise SearchUnavailable() from None
            log.warning("the replicas of %s are still being copied after %ss", index,
                        int(self.timeout))

    @staticmethod
    def _bulk_body(definition: IndexDefinition, index: str,
                   actions: Sequence[Action]) -> bytes:
        lines: list[bytes] = []
        for action in actions:
            if isinstance(action, Upsert):
                lines.append(orjson.dumps({"index": {"_index": index, "_id": action.id}}))
                lines.append(_json(es_dsl.document(definition, action.document)))
            elif isinstance(action, Delete):
                lines.append(orjson.dumps({"delete": {"_index": index, "_id": action.id}}))
        return b"\n".join(lines) + b"\n"

    def _send_bulk(self, body: bytes) -> BulkResult:
        response = self._request("POST", "/_bulk", body)
        result = BulkResult()
        for item in response.get("items", []):
            op = next(iter(item.values()))
            status = int(op.get("status", 500))
            if status < 300 or (status == 404 and "delete" in item):
                result.applied += 1
            elif status in (429, 503):
                raise SearchUnavailable()
            else:
                result.errors.append(f"{op.get('_id')}: {op.get('error', {}).get('reason')}")
        return result

    def refresh(self, index: str) -> None:
        self._request("POST", f"/{index}/_refresh")

    def count(self, index: str, filters: Iterable[Any] = ()) -> int:
        definition = self._definition(index)
        body = {"query": es_dsl.filters_query(definition, tuple(filters))}
        return int(self._request("POST", f"/{index}/_count", body)["count"])

    def count_cells(self, index: str, request: CountRequest) -> list[tuple[int, int]]:
        with self.start_count(index, request) as counting:
            return counting.result()

    def start_count(self, index: str, request: CountRequest) -> PendingCounts:
        """The count request is sent now, and its answer read by ``result()``: the caller's
        thread works meanwhile, with no other thread to take turns with (see :mod:`.reads`)."""
        groups: list[Any] = []

        def build(definition: IndexDefinition) -> bytes:
            body, groups[:] = es_dsl.count_body(definition, request)
            return _json(body)

        reading = self._start_read(index, _SEARCH, build)

        def result() -> list[tuple[int, int]]:
            _definition, response = reading.result()
            return es_dsl.parse_counts(response, groups, request.size())

        return PendingCounts(result, reading.close)

    def get(self, index: str, doc_id: str) -> dict[str, Any] | None:
        definition = self._definition(index)
        try:
            found = self._request("GET", f"/{index}/_doc/{doc_id}")
        except NotFound:
            return None
        if not found.get("found"):
            return None
        return es_dsl.stored(definition, found["_source"])

    def search(self, index: str, request: SearchRequest) -> SearchResult:
        tokens = words(request.text) if request.text else []
        definition, response = self._read(
            index, _SEARCH, lambda definition: es_dsl.search_body(definition, request, tokens))
        hits = response["hits"]
        cursors: list[int] = []
        if request.sort:
            key, _ = sort_field(definition, request.sort)
            cursors = [int(h["_source"].get(key, 0)) for h in hits["hits"]]
        return SearchResult(
            total=int(hits["total"]["value"]),
            ids=[str(h["_source"][definition.id_field]) for h in hits["hits"]],
            facets=es_dsl.parse_facets(response, tuple(f.name for f in request.facet_requests())),
            cursors=cursors,
        )


def _orjson_serializer() -> Any:
    from opensearchpy.serializer import JSONSerializer

    class Serializer(JSONSerializer):
        """Responses read by orjson: a grouped cohort count answers with a thousand buckets,
        which the standard library reads several times more slowly. Integers beyond 64 bits
        do not occur in the catalogue's indices; the rest reads the same."""

        def loads(self, s: Any) -> Any:
            try:
                return orjson.loads(s)
            except orjson.JSONDecodeError:
                return super().loads(s)  # the client's own error for what is not JSON

    return Serializer()


class OpenSearchBackend(RestSearchBackend):
    name = "opensearch"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        super().__init__(urls, **kwargs)
        from opensearchpy import OpenSearch

        self.client = OpenSearch(
            hosts=urls,
            serializer=_orjson_serializer(),
            timeout=self.timeout,
            max_retries=1,
            retry_on_timeout=False,
            verify_certs=self.verify_certs,
            ssl_show_warn=False,
            # per node; urllib3's default of one makes every concurrent request (the serving
            # threads, a load's bulk requests in flight) open and drop a connection of its own
            pool_maxsize=POOL_MAXSIZE,
        )

    def _send(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        from opensearchpy import exceptions as osx

        if params:  # in the URL: the client would take a "timeout" param as its own timeout
            path += "?" + urlencode(params)
        try:
            return self.client.transport.perform_request(method, path, body=body)
        except osx.TransportError as exc:
            if isinstance(exc.status_code, int):
                raise EngineHTTPError(exc.status_code, exc.info) from None
            raise SearchUnavailable() from None  # connection error / timeout (status "N/A")
        except osx.ImproperlyConfigured as exc:
            raise CatalogueError(f"search client misconfigured: {exc}") from None


class ElasticsearchBackend(RestSearchBackend):
    name = "elasticsearch"

    def __init__(self, urls: list[str], **kwargs: Any) -> None:
        super().__init__(urls, **kwargs)
        from elasticsearch import Elasticsearch

        self.client = Elasticsearch(
            hosts=urls,
            request_timeout=self.timeout,
            max_retries=1,
            retry_on_timeout=False,
            verify_certs=self.verify_certs,
        )

    def _send(
        self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None
    ) -> Any:
        import elastic_transport
        from elasticsearch import ApiError

        headers = {"accept": "application/json"}
        if body is not None:
            headers["content-type"] = (
                "application/x-ndjson" if path.endswith("_bulk") else "application/json"
            )
        query = "?" + urlencode(params) if params else ""
        try:
            response = self.client.perform_request(method, path + query, headers=headers, body=body)
        except ApiError as exc:
            raise EngineHTTPError(exc.meta.status, exc.body) from None
        except elastic_transport.TransportError:
            raise SearchUnavailable() from None
        return response.body


def detect_engine(url: str, timeout: float = 5.0, verify: bool = True) -> str:
    """``opensearch`` or ``elasticsearch``, from the root endpoint of the first URL."""
    import base64
    import ssl
    import urllib.request

    parts = urlsplit(url)
    clean = url
    headers = {"Accept": "application/json"}
    if parts.username:
        token = base64.b64encode(f"{parts.username}:{parts.password or ''}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
        clean = url.replace(f"{parts.username}:{parts.password}@", "").replace(
            f"{parts.username}@", ""
        )
    context = None
    if not verify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    request = urllib.request.Request(clean.rstrip("/") + "/", headers=headers)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:  # noqa: S310
            info = json.loads(resp.read())
    except OSError as exc:
        raise SearchUnavailable(
            f"cannot reach the search engine at {parts.scheme}://{parts.hostname}:{parts.port}: "
            f"{getattr(exc, 'reason', exc)}"
        ) from None
    distribution = info.get("version", {}).get("distribution")
    return "opensearch" if distribution == "opensearch" else "elasticsearch"
