"""Searches and counts sent to Elasticsearch/OpenSearch in two steps: send, then read the answer.

The official clients send a request and wait for its answer in one call. A cohort count has
work of its own to do while the engine counts (decide the privacy budget, draw the noise), and
doing it in other threads made the count slower: those threads and the request's thread take
turns on the interpreter, so the request went out late and its answer was read late (about 1.5
ms of a 15 ms count at p50, measured). Here the request is sent, the caller works, then reads.

Reads (``POST /{index}/_search``) go on keep-alive connections of their own, per node, taken
from the URLs the backend was configured with (``user:password@`` in a URL is sent as basic
authentication; ``https`` URLs verify certificates unless ``verify_certs`` is off). A read is
idempotent, so it fails over as the official clients do: one that fails on a connection the
server had closed while it was idle is sent again on a new one; one a node drops in flight, or
answers 502/503/504, goes to the next node; a node that refuses connections is skipped for
``DEAD_FOR`` seconds. A timeout is not sent elsewhere. What is left is the caller's to map:
:class:`EngineHTTPError` for an HTTP status, ``SearchUnavailable`` when no node answered.
"""

from __future__ import annotations

import base64
import http.client
import itertools
import ssl
import time
from collections import deque
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import orjson

from catalogue.errors import SearchUnavailable


class EngineHTTPError(Exception):
    """The engine answered with a status other than 2xx (``info``: its JSON body, or text),
    on the read connections here or through the official client."""

    def __init__(self, status: int, info: Any) -> None:
        self.status = status
        self.info = info
        super().__init__(f"{status}: {str(info)[:300]}")


class _Node(NamedTuple):
    slot: int                    # its place in the pool's list of nodes
    https: bool
    host: str
    port: int
    prefix: str                  # a path the URL puts before every request's (usually "")
    headers: dict[str, str]


#: seconds a node that refused a connection is skipped (tried again when every node is)
DEAD_FOR = 60.0

#: statuses a node answers while it cannot serve (shutting down, overloaded): the read goes to
#: the next node, as the official clients do
_RETRY_STATUSES = (502, 503, 504)


class ReadPool:
    """Keep-alive connections for reads, per node (at most ``size`` idle ones each)."""

    def __init__(self, urls: list[str], timeout: float, verify_certs: bool = True,
                 size: int = 16) -> None:
        if not urls:
            raise ValueError("no search engine URL")
        self.timeout = timeout
        self.size = size
        self._nodes = [_node(slot, u) for slot, u in enumerate(urls)]
        self._idle: list[deque[http.client.HTTPConnection]] = [deque() for _ in self._nodes]
        self._dead_until = [0.0] * len(self._nodes)
        self._turn = itertools.cycle(range(len(self._nodes)))
        self._tls: ssl.SSLContext | None = None
        if any(n.https for n in self._nodes):
            self._tls = ssl.create_default_context()
            if not verify_certs:
                self._tls.check_hostname = False
                self._tls.verify_mode = ssl.CERT_NONE

    def send(self, path: str, body: bytes) -> SentRead:
        """POST ``body`` (JSON) to ``path`` on the next node and return without waiting for
        the answer. A node that cannot be reached is skipped for the next (and for
        ``DEAD_FOR`` seconds); when none can be, the error is kept for
        :meth:`SentRead.result` (so the caller's work goes on as if the request were out, and
        every failure surfaces in one place)."""
        first, now = next(self._turn), time.monotonic()
        order = [self._nodes[(first + step) % len(self._nodes)]
                 for step in range(len(self._nodes))]
        order.sort(key=lambda n: self._dead_until[n.slot] > now)  # live nodes first
        sent = SentRead(self, path, body, order)
        sent._next()
        return sent

    def close(self) -> None:
        for idle in self._idle:
            while idle:
                idle.pop().close()

    # -- connections --------------------------------------------------------------------------
    def _take(self, node: _Node) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection to ``node`` (and ``True``), or a new one (``False``)."""
        idle = self._idle[node.slot]
        try:
            return idle.pop(), True
        except IndexError:
            return self._connect(node), False

    def _connect(self, node: _Node) -> http.client.HTTPConnection:
        """A new connection to ``node`` (it connects when first used)."""
        if node.https:
            return http.client.HTTPSConnection(node.host, node.port, timeout=self.timeout,
                                               context=self._tls)
        return http.client.HTTPConnection(node.host, node.port, timeout=self.timeout)

    def _give_back(self, node: _Node, conn: http.client.HTTPConnection) -> None:
        idle = self._idle[node.slot]
        if len(idle) < self.size:
            idle.append(conn)
        else:
            conn.close()

    def _dead(self, node: _Node) -> None:
        self._dead_until[node.slot] = time.monotonic() + DEAD_FOR
        idle = self._idle[node.slot]  # connections to a node that went away are stale
        while idle:
            idle.pop().close()


class SentRead:
    """A read on its way: :meth:`result` waits for the answer (once); :meth:`close` abandons
    it (its connection is closed, not reused: the answer would still be on it)."""

    def __init__(self, pool: ReadPool, path: str, body: bytes, order: list[_Node]) -> None:
        self.pool = pool
        self.path = path
        self.body = body
        self.error: BaseException | None = None
        self._order = order          # the nodes not tried yet, in turn
        self._node: _Node | None = None
        self._conn: http.client.HTTPConnection | None = None
        self._reused = False

    def _next(self, fresh: _Node | None = None) -> bool:
        """Send on the next node not tried yet (on ``fresh`` with a new connection, when
        given); ``False`` when no node is left that accepts the request."""
        while fresh is not None or self._order:
            node = fresh if fresh is not None else self._order.pop(0)
            conn, reused = (self.pool._connect(node), False) if fresh else self.pool._take(node)
            fresh = None
            try:
                conn.request("POST", node.prefix + self.path, self.body, node.headers)
            except OSError as exc:
                conn.close()
                self.error = exc
                if reused:  # closed by the server while idle: once more, on a new one
                    fresh = node
                else:
                    self.pool._dead(node)
                continue
            self._node, self._conn, self._reused = node, conn, reused
            return True
        return False

    def result(self) -> Any:
        """The engine's JSON answer; ``EngineHTTPError`` for a status other than 2xx,
        ``SearchUnavailable`` when no node answered (refused, reset, timed out)."""
        while True:
            conn, node = self._conn, self._node
            if conn is None or node is None:
                raise SearchUnavailable() from self.error
            self._conn = None
            try:
                response = conn.getresponse()
                data = response.read()
            except TimeoutError:  # the node is there but slow: not sent elsewhere
                conn.close()
                raise SearchUnavailable() from None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                self.error = exc
                if self._reused:  # closed by the server while idle: once more, on a new one
                    self._next(fresh=node)
                else:  # the node went away with the request
                    self.pool._dead(node)
                    self._next()
                continue
            if response.will_close:
                conn.close()
            else:
                self.pool._give_back(node, conn)
            if 200 <= response.status < 300:
                return orjson.loads(data)
            if response.status in _RETRY_STATUSES and self._next():
                continue
            try:
                info: Any = orjson.loads(data)
            except orjson.JSONDecodeError:
                info = data.decode("utf-8", "replace")
            raise EngineHTTPError(response.status, info)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _node(slot: int, url: str) -> _Node:
    """A node from a URL as the official clients take it (``http://host:9200``, with an
    optional ``user:password@`` and path prefix)."""
    if "//" not in url:
        url = "http://" + url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not a search engine URL: {url!r}")
    headers = {"Content-Type": "application/json", "Accept": "application/json",
               "Connection": "keep-alive"}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    port = parts.port or (443 if parts.scheme == "https" else 9200)
    return _Node(slot, parts.scheme == "https", parts.hostname, port, parts.path.rstrip("/"),
                 headers)

