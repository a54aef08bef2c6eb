"""A small real HTTP(S) server on 127.0.0.1 for tests, with scripted replies and a request log.

Each path answers with a list of :class:`Reply` (successive requests get successive replies; the
last one repeats) or with a handler function that writes the response itself (streaming, stalls,
broken framing). Every request is recorded with its headers. Standard library only.

Example (pytest)::

    @pytest.fixture
    def server() -> Iterator[LocalHTTPServer]:
        with LocalHTTPServer() as srv:
            yield srv

    def test_retry(server: LocalHTTPServer) -> None:
        server.reply("/data", Reply(503), Reply(200, b"ok"))
        result = fetch(server.url("/data"), FetchPolicy(allowed_origins={server.origin}))
        assert len(server.requests_for("/data")) == 2

For HTTPS pass an :class:`ssl.SSLContext` with the server certificate loaded; the TLS handshake
runs in the request thread, so a client that fails it does not block the server.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

__all__ = ["BackgroundHTTPServer", "Handler", "LocalHTTPServer", "RecordedRequest", "Reply",
           "send_reply"]

Handler = Callable[[BaseHTTPRequestHandler], None]


@dataclass(frozen=True)
class Reply:
    """One scripted response. ``Content-Length`` is added unless given in ``headers``."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # with query
    headers: dict[str, str]  # lower-case names


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: LocalHTTPServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN (a DNS query): not wanted here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def finish_request(self, request: Any, client_address: Any) -> None:
        tls = self.owner.tls
        if tls is not None:
            try:
                request = tls.wrap_socket(request, server_side=True)
            except (OSError, ssl.SSLError):
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up (timeouts, size caps) are expected in these tests.
        pass


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.owner.dispatch(self)

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


class BackgroundHTTPServer:
    """The lifecycle every test server shares: a ``ThreadingHTTPServer`` built by
    :meth:`_make_server`, served from a daemon thread, stopped (and ``stopping`` set, so that
    long-running handlers end) by :meth:`stop` or on leaving the ``with`` block."""

    _httpd: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __init__(self) -> None:
        self.stopping = threading.Event()

    def _make_server(self) -> ThreadingHTTPServer:
        raise NotImplementedError

    def start(self) -> Self:
        httpd = self._make_server()
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class LocalHTTPServer(BackgroundHTTPServer):
    """A threaded HTTP server on a free port of 127.0.0.1 (or another loopback address)."""

    def __init__(self, host: str = "127.0.0.1", *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.tls = tls
        super().__init__()
        self.requests: list[RecordedRequest] = []
        self._routes: dict[str, Handler] = {}
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------
    def _make_server(self) -> ThreadingHTTPServer:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server_class = type("_BoundServer", (_Server,), {"address_family": family})
        httpd = server_class((self.host, 0), _RequestHandler)
        httpd.owner = self
        return httpd

    # -- addresses ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        """``host:port``, as :attr:`FetchPolicy.allowed_origins` expects it."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def url(self, path: str = "/") -> str:
        scheme = "https" if self.tls is not None else "http"
        return f"{scheme}://{self.origin}{path}"

    # -- behaviour ----------------------------------------------------------------------------
    def reply(self, path: str, *replies: Reply) -> None:
        """Answer ``path`` with ``replies`` in turn; the last one repeats."""
        if not replies:
            raise ValueError("at least one reply is needed")
        queue = list(replies)
        lock = threading.Lock()

        def handler(request: BaseHTTPRequestHandler) -> None:
            with lock:
                current = queue.pop(0) if len(queue) > 1 else queue[0]
            send_reply(request, current)

        self.route(path, handler)

    def route(self, path: str, handler: Handler) -> None:
        """Let ``handler`` write the whole response for ``path`` (query ignored)."""
        with self._lock:
            self._routes[path] = handler

    def requests_for(self, path: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if urlsplit(r.path).path == path]

    def dispatch(self, request: BaseHTTPRequestHandler) -> None:
        recorded = RecordedRequest(
            method=request.command,
            path=request.path,
            headers={name.lower(): value for name, value in request.headers.items()},
        )
        with self._lock:
            self.requests.append(recorded)
            handler = self._routes.get(urlsplit(request.path).path)
        if handler is None:
            send_reply(request, Reply(404, b"not found"))
            return
        with contextlib.suppress(ConnectionError, TimeoutError):
            handler(request)


def send_reply(request: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Write ``reply`` on ``request`` and close the connection afterwards."""
    request.send_response(reply.status)
    names = {name.lower() for name in reply.headers}
    for name, value in reply.headers.items():
        request.send_header(name, value)
    if "content-length" not in names and "transfer-encoding" not in names:
        request.send_header("Content-Length", str(len(reply.body)))
    request.send_header("Connection", "close")
    request.end_headers()
    if request.command != "HEAD":
        request.wfile.write(reply.body)
    request.close_connection = True
