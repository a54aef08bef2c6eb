"""catalogue.harvest.http: the SSRF guard, pinning, limits, retries and redirects.

Real HTTP(S) servers run on 127.0.0.1 in threads. Two autouse fixtures make the network rule
of these tests checkable: every ``connect`` is recorded and fails the test unless it targets a
loopback address, and name resolution is faked (no DNS query leaves the process), recording
every name looked up. Refusals are therefore proved to happen before any connection attempt.
"""

from __future__ import annotations

import gzip
import ipaddress
import logging
import shutil
import socket
import ssl
import subprocess
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from catalogue.errors import CatalogueError
from catalogue.harvest.http import (
    RETRY_AFTER_CAP,
    FetchError,
    FetchPolicy,
    check_url,
    fetch,
    redact_url,
)
from catalogue.testing.http_server import LocalHTTPServer, Reply

_real_getaddrinfo = socket.getaddrinfo


# --- Network rule fixtures -------------------------------------------------------------------


@pytest.fixture(autouse=True)
def connections(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every outgoing connect (host, port); anything but loopback fails the test at once."""
    attempts: list[tuple[str, int]] = []
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex

    def record(address: Any) -> None:
        if not isinstance(address, tuple):  # AF_UNIX
            return
        host = str(address[0])
        attempts.append((host, int(address[1])))
        try:
            loopback = ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise AssertionError(f"connection attempt to non-loopback address {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        record(address)
        real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        record(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts


@dataclass
class FakeDNS:
    """Answers for host names (successive answers per name; the last repeats)."""

    answers: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)  # names only; numeric hosts pass through

    def add(self, name: str, *answers: list[str]) -> None:
        self.answers[name] = list(answers)

    def __call__(
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
    ) -> list[Any]:
        name = host.decode() if isinstance(host, bytes) else str(host)
        try:
            ipaddress.ip_address(name.split("%", 1)[0])
        except ValueError:
            pass
        else:
            return _real_getaddrinfo(name, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        self.lookups.append(name)
        queue = self.answers.get(name.lower())
        if not queue:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        ips = queue.pop(0) if len(queue) > 1 else queue[0]
        infos: list[Any] = []
        for ip in ips:
            if ":" in ip:
                infos.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "", (ip, int(port), 0, 0)))
            else:
                infos.append((socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, int(port))))
        return infos


@pytest.fixture(autouse=True)
def dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    fake = FakeDNS()
    fake.add("localhost", ["127.0.0.1", "::1"])
    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return fake


@pytest.fixture
def server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


@pytest.fixture
def other_server() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as srv:
        yield srv


def allow(*servers: LocalHTTPServer, **overrides: Any) -> FetchPolicy:
    """A fast policy that lets exactly these test servers through the guard."""
    settings: dict[str, Any] = {
        "timeout": 2.0,
        "connect_timeout": 2.0,
        "total_timeout": 10.0,
        "retries": 0,
        "backoff": 0.01,
        "allowed_origins": frozenset(s.origin for s in servers),
    }
    settings.update(overrides)
    return FetchPolicy(**settings)


def streaming(
    server: LocalHTTPServer, write: Callable[[BaseHTTPRequestHandler], None]
) -> Callable[[BaseHTTPRequestHandler], None]:
    """A handler sending 200 without Content-Length, then calling ``write`` until stopped."""

    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Type", "text/plain")
        request.send_header("Connection", "close")
        request.end_headers()
        while not server.stopping.is_set():
            write(request)

    return handler


# --- Happy paths -----------------------------------------------------------------------------


def test_gzip_body_is_decoded_and_headers_are_lower_case(server: LocalHTTPServer) -> None:
    body = b'{"@graph": []}' * 200
    server.reply(
        "/catalog.jsonld",
        Reply(
            200,
            gzip.compress(body),
            {
                "Content-Type": "application/ld+json",
                "Content-Encoding": "gzip",
                "ETag": '"v1"',
                "Last-Modified": "Wed, 01 Jan 2025 00:00:00 GMT",
            },
        ),
    )

    result = fetch(server.url("/catalog.jsonld"), allow(server), accept="application/ld+json")

    assert result.status == 200
    assert result.content == body
    assert not result.not_modified
    assert result.url == server.url("/catalog.jsonld")
    assert result.content_type == "application/ld+json"
    assert result.etag == '"v1"'
    assert result.last_modified == "Wed, 01 Jan 2025 00:00:00 GMT"
    assert all(name == name.lower() for name in result.headers)
    sent = server.requests_for("/catalog.jsonld")[0].headers
    assert sent["host"] == server.origin
    assert sent["accept"] == "application/ld+json"
    assert sent["accept-encoding"] == "gzip, deflate"
    assert sent["user-agent"].startswith("cancer-imaging-catalogue/")
    assert "authorization" not in sent


@pytest.mark.parametrize(
    "encode",
    [
        pytest.param(zlib.compress, id="zlib-wrapped"),
        pytest.param(lambda data: zlib.compress(data)[2:-4], id="raw-deflate"),
    ],
)
def test_deflate_body_is_decoded(server: LocalHTTPServer, encode: Callable[[bytes], bytes]) -> None:
    body = b"<rdf:RDF/>" * 500
    server.reply("/d", Reply(200, encode(body), {"Content-Encoding": "deflate"}))
    assert fetch(server.url("/d"), allow(server)).content == body


def test_multi_member_gzip_is_decoded(server: LocalHTTPServer) -> None:
    server.reply(
        "/m",
        Reply(200, gzip.compress(b"one,") + gzip.compress(b"two"), {"Content-Encoding": "gzip"}),
    )
    assert fetch(server.url("/m"), allow(server)).content == b"one,two"


def test_conditional_request_gets_not_modified(server: LocalHTTPServer) -> None:
    def handler(request: BaseHTTPRequestHandler) -> None:
        from catalogue.testing.http_server import send_reply

        if request.headers.get("If-None-Match") == '"v1"':
            send_reply(request, Reply(304, b"", {"ETag": '"v1"'}))
        else:
            send_reply(request, Reply(200, b"fresh", {"ETag": '"v2"'}))

    server.route("/c", handler)
    last_modified = "Wed, 01 Jan 2025 00:00:00 GMT"

    result = fetch(server.url("/c"), allow(server), etag='"v1"', last_modified=last_modified)

    assert result.not_modified
    assert result.status == 304
    assert result.content == b""
    assert result.etag == '"v1"'
    sent = server.requests_for("/c")[0].headers
    assert sent["if-none-match"] == '"v1"'
    assert sent["if-modified-since"] == last_modified
    changed = fetch(server.url("/c"), allow(server), etag='"v0"')
    assert not changed.not_modified
    assert changed.content == b"fresh"


# --- Size caps and deadlines -----------------------------------------------------------------


def test_content_length_above_cap_is_refused_before_reading(server: LocalHTTPServer) -> None:
    server.reply("/big", Reply(200, b"x" * 10, {"Content-Length": str(10**9)}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/big"), allow(server, max_bytes=1000))
    assert caught.value.kind == "too_large"
    assert "Content-Length 1000000000" in caught.value.message


def test_streamed_body_above_cap_is_aborted(server: LocalHTTPServer) -> None:
    def write(request: BaseHTTPRequestHandler) -> None:
        request.wfile.write(b"x" * 8192)

    server.route("/endless", streaming(server, write))
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/endless"), allow(server, max_bytes=100_000))
    assert caught.value.kind == "too_large"
    assert time.monotonic() - started < 5


def test_chunked_body_above_cap_is_aborted(server: LocalHTTPServer) -> None:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        chunk = b"y" * 4096
        while not server.stopping.is_set():
            request.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))

    server.route("/chunked", handler)
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/chunked"), allow(server, max_bytes=50_000))
    assert caught.value.kind == "too_large"


def test_decompression_bomb_is_cut_at_the_cap(server: LocalHTTPServer) -> None:
    bomb = gzip.compress(b"\0" * (64 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    server.reply("/bomb", Reply(200, bomb, {"Content-Encoding": "gzip"}))
    tracemalloc.start()
    try:
        with pytest.raises(FetchError) as caught:
            fetch(server.url("/bomb"), allow(server, max_bytes=1024 * 1024))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert caught.value.kind == "too_large"
    assert "decoded" in caught.value.message
    assert peak < 8 * 1024 * 1024  # never inflated much past the cap


def test_corrupt_gzip_is_bad_content(server: LocalHTTPServer) -> None:
    server.reply("/corrupt", Reply(200, b"\x1f\x8bnot gzip at all", {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/corrupt"), allow(server))
    assert caught.value.kind == "bad_content"


def test_truncated_gzip_is_bad_content(server: LocalHTTPServer) -> None:
    server.reply("/cut", Reply(200, gzip.compress(b"a" * 5000)[:-12], {"Content-Encoding": "gzip"}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/cut"), allow(server))
    assert caught.value.kind == "bad_content"


def test_unknown_content_encoding_is_bad_content(server: LocalHTTPServer) -> None:
    server.reply("/br", Reply(200, b"\x0b\x02\x80", {"Content-Encoding": "br"}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/br"), allow(server))
    assert caught.value.kind == "bad_content"


def test_endless_slow_stream_is_cut_by_total_timeout(server: LocalHTTPServer) -> None:
    def trickle(request: BaseHTTPRequestHandler) -> None:
        request.wfile.write(b"x")
        time.sleep(0.02)

    server.route("/slow", streaming(server, trickle))
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/slow"), allow(server, timeout=1.0, total_timeout=0.5, retries=3))
    elapsed = time.monotonic() - started
    assert caught.value.kind == "timeout"
    assert "total_timeout" in caught.value.message
    assert elapsed < 1.5


def test_trickled_headers_are_cut_by_total_timeout(server: LocalHTTPServer) -> None:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
        while not server.stopping.is_set():
            request.wfile.write(b"a")
            time.sleep(0.02)

    server.route("/slow-headers", handler)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/slow-headers"), allow(server, timeout=1.0, total_timeout=0.5))
    assert caught.value.kind == "timeout"
    assert time.monotonic() - started < 1.5


def test_stalled_server_hits_the_read_timeout(server: LocalHTTPServer) -> None:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "100")
        request.end_headers()
        server.stopping.wait(5)

    server.route("/stall", handler)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/stall"), allow(server, timeout=0.2))
    assert caught.value.kind == "timeout"
    assert caught.value.retryable
    assert time.monotonic() - started < 1.5


def test_stall_after_the_deadline_does_not_wait_for_the_read_timeout(
    server: LocalHTTPServer,
) -> None:
    def handler(request: BaseHTTPRequestHandler) -> None:
        request.send_response(200)
        request.send_header("Content-Length", "100")
        request.end_headers()
        request.wfile.write(b"partial")
        server.stopping.wait(10)

    server.route("/stall", handler)
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/stall"), allow(server, timeout=5.0, total_timeout=0.5, retries=2))
    assert caught.value.kind == "timeout"
    assert "total_timeout" in caught.value.message
    assert time.monotonic() - started < 1.5


# --- Retries ---------------------------------------------------------------------------------


def test_503_is_retried_until_success(server: LocalHTTPServer) -> None:
    server.reply("/flaky", Reply(503), Reply(502), Reply(200, b"ok"))
    result = fetch(server.url("/flaky"), allow(server, retries=3))
    assert result.content == b"ok"
    assert len(server.requests_for("/flaky")) == 3


def test_retry_after_is_honoured(server: LocalHTTPServer) -> None:
    server.reply("/busy", Reply(429, b"", {"Retry-After": "1"}), Reply(200, b"ok"))
    started = time.monotonic()
    result = fetch(server.url("/busy"), allow(server, retries=2, backoff=0.01))
    assert result.content == b"ok"
    assert time.monotonic() - started >= 0.95
    assert len(server.requests_for("/busy")) == 2


def test_retry_after_beyond_the_cap_is_not_waited_for(server: LocalHTTPServer) -> None:
    later = str(int(RETRY_AFTER_CAP) + 3600)
    server.reply("/later", Reply(503, b"", {"Retry-After": later}), Reply(200, b"ok"))
    started = time.monotonic()
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/later"), allow(server, retries=3))
    assert caught.value.http_status == 503
    assert caught.value.retry_after == float(later)
    assert len(server.requests_for("/later")) == 1
    assert time.monotonic() - started < 1


def test_retries_are_exhausted(server: LocalHTTPServer) -> None:
    server.reply("/down", Reply(503))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/down"), allow(server, retries=2))
    assert caught.value.kind == "http_status"
    assert caught.value.http_status == 503
    assert "HTTP 503" in caught.value.message
    assert len(server.requests_for("/down")) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 500, 501])
def test_other_errors_are_not_retried(server: LocalHTTPServer, status: int) -> None:
    server.reply("/e", Reply(status, b"secret body text"))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/e"), allow(server, retries=3))
    error = caught.value
    assert (error.kind, error.http_status, error.retryable) == ("http_status", status, False)
    assert len(server.requests_for("/e")) == 1
    assert "secret body text" not in error.message
    assert isinstance(error, CatalogueError)
    assert (error.code, error.status) == ("fetch_failed", 502)


def test_connection_errors_are_retried(connections: list[tuple[str, int]]) -> None:
    with socket.socket() as probe:  # a port with nobody listening
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    policy = FetchPolicy(allowed_origins=frozenset({f"127.0.0.1:{port}"}), retries=2, backoff=0.01)
    with pytest.raises(FetchError) as caught:
        fetch(f"http://127.0.0.1:{port}/", policy)
    assert caught.value.kind == "connection"
    assert connections == [("127.0.0.1", port)] * 3


def test_total_timeout_bounds_the_retries(server: LocalHTTPServer) -> None:
    server.reply("/down", Reply(503))
    started = time.monotonic()
    with pytest.raises(FetchError):
        fetch(server.url("/down"), allow(server, retries=10, backoff=0.3, total_timeout=1.0))
    assert time.monotonic() - started < 1.5


# --- Redirects -------------------------------------------------------------------------------


def test_redirect_to_an_allowed_url_is_followed(server: LocalHTTPServer) -> None:
    server.reply("/old", Reply(301, b"", {"Location": "/new?page=1"}))
    server.reply("/new", Reply(200, b"moved"))
    result = fetch(server.url("/old"), allow(server))
    assert result.content == b"moved"
    assert result.url == server.url("/new?page=1")


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
        ("http://10.0.0.1/", "blocked_address"),
        ("http://127.0.0.2:{port}/", "blocked_address"),
        ("http://localhost:{port}/", "blocked_address"),
        ("http://[::ffff:169.254.169.254]/", "blocked_address"),
        ("http://2130706433:{port}/", "bad_url"),
        ("file:///etc/passwd", "unsupported_scheme"),
        ("gopher://127.0.0.1:{port}/", "unsupported_scheme"),
    ],
)
def test_redirect_to_a_forbidden_target_is_refused_without_connecting(
    server: LocalHTTPServer, connections: list[tuple[str, int]], location: str, kind: str
) -> None:
    server.reply("/go", Reply(302, b"", {"Location": location.format(port=server.port)}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/go"), allow(server))
    assert caught.value.kind == kind
    assert "redirect to" in caught.value.message
    assert connections == [("127.0.0.1", server.port)]


def test_redirect_loop_is_detected(server: LocalHTTPServer) -> None:
    server.reply("/a", Reply(302, b"", {"Location": "/b"}))
    server.reply("/b", Reply(307, b"", {"Location": server.url("/a")}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/a"), allow(server, max_redirects=10))
    assert caught.value.kind == "too_many_redirects"
    assert "loop" in caught.value.message
    assert len(server.requests) == 2


def test_max_redirects_is_enforced(server: LocalHTTPServer) -> None:
    for step in range(10):
        server.reply(f"/r{step}", Reply(302, b"", {"Location": f"/r{step + 1}"}))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/r0"), allow(server, max_redirects=3))
    assert caught.value.kind == "too_many_redirects"
    assert len(server.requests) == 4


def test_credentials_are_not_sent_across_origins(
    server: LocalHTTPServer, other_server: LocalHTTPServer
) -> None:
    server.reply("/start", Reply(302, b"", {"Location": "/same"}))
    server.reply("/same", Reply(302, b"", {"Location": other_server.url("/elsewhere")}))
    other_server.reply("/elsewhere", Reply(200, b"there"))

    result = fetch(
        server.url("/start"),
        allow(server, other_server),
        bearer_token="tok-123",
        headers={"Cookie": "session=1", "X-Trace": "t"},
    )

    assert result.content == b"there"
    same = server.requests_for("/same")[0].headers
    assert same["authorization"] == "Bearer tok-123"
    assert same["cookie"] == "session=1"
    elsewhere = other_server.requests_for("/elsewhere")[0].headers
    assert "authorization" not in elsewhere
    assert "cookie" not in elsewhere
    assert elsewhere["x-trace"] == "t"
    assert elsewhere["host"] == other_server.origin


# --- The address guard -----------------------------------------------------------------------

REFUSED_DIRECTLY = [
    ("http://127.0.0.1/", "blocked_address"),
    ("http://127.0.0.1:8123/", "blocked_address"),
    ("http://169.254.169.254/latest/meta-data/", "blocked_address"),
    ("http://10.1.2.3/", "blocked_address"),
    ("http://172.16.0.1/", "blocked_address"),
    ("http://192.168.1.1/", "blocked_address"),
    ("http://100.64.0.1/", "blocked_address"),
    ("http://0.0.0.0/", "blocked_address"),
    ("http://224.0.0.1/", "blocked_address"),
    ("http://255.255.255.255/", "blocked_address"),
    ("http://[::1]/", "blocked_address"),
    ("http://[::]/", "blocked_address"),
    ("http://[::ffff:127.0.0.1]/", "blocked_address"),
    ("http://[::ffff:7f00:1]/", "blocked_address"),
    ("http://[::ffff:a9fe:a9fe]/", "blocked_address"),
    ("http://[64:ff9b::a00:1]/", "blocked_address"),
    ("http://[2002:a9fe:a9fe::1]/", "blocked_address"),
    ("http://[fd00:ec2::254]/", "blocked_address"),
    ("http://[fe80::1]/", "blocked_address"),
    ("http://[ff02::1]/", "blocked_address"),
    ("http://2130706433/", "bad_url"),
    ("http://0x7f000001/", "bad_url"),
    ("http://0x7f.1/", "bad_url"),
    ("http://0177.0.0.1/", "bad_url"),
    ("http://127.1/", "bad_url"),
    ("http://017700000001/", "bad_url"),
    ("http://0x08080808/", "bad_url"),
    ("http://[fe80::1%25eth0]/", "bad_url"),
    ("http://%31%32%37.0.0.1/", "bad_url"),
    ("http://127\u30020\u30020\u30021/", "blocked_address"),
    ("http://\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54/", "blocked_address"),
    ("http://localhost/", "blocked_address"),
    ("http://LOCALHOST./", "blocked_address"),
    ("https://localhost:8443/", "blocked_address"),
    ("file:///etc/passwd", "unsupported_scheme"),
    ("ftp://example.org/x", "unsupported_scheme"),
    ("gopher://127.0.0.1/", "unsupported_scheme"),
    ("//example.org/x", "unsupported_scheme"),
    ("http:///path-only", "bad_url"),
    ("http://exa mple.org/", "bad_url"),
    ("http://example.org:99999/", "bad_url"),
    ("http://example.org:0/", "bad_url"),
    ("http://127.0.0.1\\@example.org/", "bad_url"),
    ("", "bad_url"),
]


@pytest.mark.parametrize(("url", "kind"), REFUSED_DIRECTLY)
def test_forbidden_urls_are_refused_before_connecting(
    connections: list[tuple[str, int]], dns: FakeDNS, url: str, kind: str
) -> None:
    with pytest.raises(FetchError) as caught:
        fetch(url)
    assert caught.value.kind == kind
    assert connections == []
    with pytest.raises(FetchError):
        check_url(url, FetchPolicy())
    assert connections == []
    assert dns.lookups in ([], ["localhost", "localhost"])  # IP spellings never reach a resolver


def test_names_resolving_to_internal_addresses_are_refused(
    connections: list[tuple[str, int]], dns: FakeDNS
) -> None:
    dns.add("metadata.attacker.test", ["169.254.169.254"])
    dns.add("mixed.attacker.test", ["93.184.216.34", "10.0.0.7"])
    for name in ("metadata.attacker.test", "mixed.attacker.test"):
        with pytest.raises(FetchError) as caught:
            fetch(f"https://{name}/catalog")
        assert caught.value.kind == "blocked_address"
        assert name in caught.value.message
        assert "10.0.0.7" not in caught.value.message  # do not reveal internal DNS answers
        assert "169.254.169.254" not in caught.value.message
    assert connections == []


def test_public_addresses_pass_the_guard(dns: FakeDNS) -> None:
    dns.add("data.example.test", ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"])
    assert check_url("https://data.example.test/dcat", FetchPolicy()) == [
        "93.184.216.34",
        "2606:2800:220:1:248:1893:25c8:1946",
    ]
    assert check_url("http://8.8.8.8/", FetchPolicy()) == ["8.8.8.8"]
    assert check_url("http://[::ffff:808:808]/", FetchPolicy()) == ["::ffff:808:808"]


def test_unknown_host_is_a_connection_error(dns: FakeDNS) -> None:
    with pytest.raises(FetchError) as caught:
        check_url("http://nowhere.invalid/", FetchPolicy())
    assert caught.value.kind == "connection"
    assert not caught.value.retryable


def test_allowed_origins_match_exact_host_and_port(server: LocalHTTPServer) -> None:
    assert check_url(server.url("/"), allow(server)) == ["127.0.0.1"]
    with pytest.raises(FetchError) as caught:
        check_url(f"http://127.0.0.1:{server.port + 1}/", allow(server))
    assert caught.value.kind == "blocked_address"
    with pytest.raises(FetchError):
        check_url(f"http://localhost:{server.port}/", allow(server))


def test_allow_private_lets_a_whole_source_use_internal_addresses(server: LocalHTTPServer) -> None:
    server.reply("/internal", Reply(200, b"inside"))
    policy = FetchPolicy(allow_private=True, retries=0)
    assert fetch(server.url("/internal"), policy).content == b"inside"
    assert check_url("http://10.1.2.3/", policy) == ["10.1.2.3"]
    with pytest.raises(FetchError) as caught:  # odd spellings stay refused
        check_url("http://2130706433/", policy)
    assert caught.value.kind == "bad_url"


def test_connection_is_pinned_to_the_checked_address(
    server: LocalHTTPServer, dns: FakeDNS, connections: list[tuple[str, int]]
) -> None:
    # DNS rebinding: a second lookup would answer 10.0.0.1 (and the connect fixture would fail).
    dns.add("rebind.test", ["127.0.0.1"], ["10.0.0.1"])
    server.reply("/p", Reply(503), Reply(200, b"pinned"))
    origin = f"rebind.test:{server.port}"
    policy = FetchPolicy(allowed_origins=frozenset({origin}), retries=2, backoff=0.01)

    result = fetch(f"http://rebind.test:{server.port}/p", policy)

    assert result.content == b"pinned"
    assert dns.lookups == ["rebind.test"]
    assert connections == [("127.0.0.1", server.port)] * 2
    assert [r.headers["host"] for r in server.requests_for("/p")] == [origin, origin]


def test_next_checked_address_is_tried_when_one_refuses(
    server: LocalHTTPServer, dns: FakeDNS, connections: list[tuple[str, int]]
) -> None:
    dns.add("multi.test", ["127.0.0.2", "127.0.0.1"])  # nobody listens on 127.0.0.2
    server.reply("/m", Reply(200, b"second"))
    policy = FetchPolicy(allowed_origins=frozenset({f"multi.test:{server.port}"}), retries=0)
    assert fetch(f"http://multi.test:{server.port}/m", policy).content == b"second"
    assert connections == [("127.0.0.2", server.port), ("127.0.0.1", server.port)]


def _ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback_available(), reason="no IPv6 loopback")
def test_ipv6_origin_on_the_allow_list() -> None:
    with LocalHTTPServer("::1") as v6:
        v6.reply("/six", Reply(200, b"v6"))
        assert v6.origin == f"[::1]:{v6.port}"
        assert fetch(v6.url("/six"), allow(v6)).content == b"v6"
        assert v6.requests_for("/six")[0].headers["host"] == v6.origin
        with pytest.raises(FetchError):
            fetch(v6.url("/six"), allow())


# --- Headers, tokens, credentials ------------------------------------------------------------


def test_bearer_token_and_custom_headers_are_sent(server: LocalHTTPServer) -> None:
    server.reply("/fhir/ImagingStudy", Reply(200, b"{}"))
    fetch(
        server.url("/fhir/ImagingStudy"),
        allow(server),
        bearer_token="eyJhbGciOi.abc-_~+/=",
        headers={"X-Request-Id": "42", "Accept": "application/json"},
        accept="application/fhir+json",
    )
    sent = server.requests_for("/fhir/ImagingStudy")[0].headers
    assert sent["authorization"] == "Bearer eyJhbGciOi.abc-_~+/="
    assert sent["x-request-id"] == "42"
    assert sent["accept"] == "application/fhir+json"


@pytest.mark.parametrize(
    ("kwargs", "secret"),
    [
        ({"bearer_token": "abc\r\nX-Injected: 1"}, "abc"),
        ({"headers": {"X-Key": "v\nX-Injected: 1"}}, "X-Injected"),
        ({"headers": {"Host": "169.254.169.254"}}, "169.254.169.254"),
        ({"headers": {"Bad Name": "v"}}, None),
        ({"etag": '"a"\r\nX-Injected: 1'}, "X-Injected"),
    ],
)
def test_invalid_headers_are_refused_without_echoing_values(
    connections: list[tuple[str, int]], kwargs: dict[str, Any], secret: str | None
) -> None:
    with pytest.raises(FetchError) as caught:
        fetch("http://127.0.0.1:9/", FetchPolicy(allow_private=True), **kwargs)
    assert caught.value.kind == "bad_request"
    if secret:
        assert secret not in caught.value.message
    assert connections == []


def test_credentials_are_stripped_from_errors_and_logs(
    server: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.reply("/private", Reply(503, b"body-text"), Reply(404, b"body-text"))
    url = f"http://alice:s3cr3t@{server.origin}/private?access_token=tok-999&page=2#frag"
    caplog.set_level(logging.DEBUG, logger="catalogue.harvest.http")

    with pytest.raises(FetchError) as caught:
        fetch(url, allow(server, retries=1), bearer_token="bearer-777")

    error = caught.value
    assert error.http_status == 404
    for text in (error.message, error.url, str(error), repr(error.details), caplog.text):
        for secret in ("alice", "s3cr3t", "tok-999", "bearer-777", "body-text"):
            assert secret not in text
    assert f"http://{server.origin}/private?access_token=REDACTED&page=2" in error.message
    sent = server.requests_for("/private")[0]
    assert sent.headers["authorization"] == "Bearer bearer-777"
    assert sent.path == "/private?access_token=tok-999&page=2"


def test_user_info_becomes_basic_auth(server: LocalHTTPServer) -> None:
    server.reply("/basic", Reply(200, b"ok"))
    fetch(f"http://alice:p%40ss@{server.origin}/basic", allow(server))
    assert server.requests_for("/basic")[0].headers["authorization"] == "Basic YWxpY2U6cEBzcw=="


def test_blocked_url_message_has_no_credentials() -> None:
    with pytest.raises(FetchError) as caught:
        fetch("http://admin:hunter2@10.0.0.1/?api_key=k-1")
    assert "hunter2" not in caught.value.message
    assert "k-1" not in caught.value.message
    assert "10.0.0.1" in caught.value.message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://u:p@host.test/a?token=x&q=1#f", "https://host.test/a?token=REDACTED&q=1"),
        (
            "http://host.test/?X-Amz-Signature=abc&X-Amz-Credential=d",
            "http://host.test/?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED",
        ),
        ("http://host.test/p\x1b[31m", "http://host.test/p?[31m"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


# --- TLS -------------------------------------------------------------------------------------


@dataclass
class Certificates:
    ca: Path
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A test CA and a server certificate for the name ``pinned.test`` only (openssl CLI)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    folder = tmp_path_factory.mktemp("tls")
    ca = ["-subj", "/CN=Test CA", "-addext", "basicConstraints=critical,CA:TRUE"]
    ca += ["-addext", "keyUsage=critical,keyCertSign,cRLSign"]
    leaf = ["-subj", "/CN=pinned.test", "-CA", f"{folder}/ca.pem", "-CAkey", f"{folder}/ca.key"]
    leaf += ["-addext", "subjectAltName=DNS:pinned.test"]
    leaf += [
        "-addext",
        "basicConstraints=critical,CA:FALSE",
        "-addext",
        "extendedKeyUsage=serverAuth",
    ]
    for name, extra in (("ca", ca), ("leaf", leaf)):
        command = [openssl, "req", "-x509", "-new", "-newkey", "ec", "-nodes", "-days", "2"]
        command += ["-pkeyopt", "ec_paramgen_curve:prime256v1"]
        command += ["-keyout", f"{folder}/{name}.key", "-out", f"{folder}/{name}.pem", *extra]
        subprocess.run(command, check=True, capture_output=True)
    return Certificates(folder / "ca.pem", folder / "leaf.pem", folder / "leaf.key")


@pytest.fixture
def tls_server(certificates: Certificates) -> Iterator[tuple[LocalHTTPServer, list[str | None]]]:
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificates.cert, certificates.key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    with LocalHTTPServer(tls=context) as srv:
        yield srv, names


def test_https_is_pinned_and_verified_against_the_host_name(
    tls_server: tuple[LocalHTTPServer, list[str | None]],
    certificates: Certificates,
    dns: FakeDNS,
    connections: list[tuple[str, int]],
) -> None:
    server, sni_names = tls_server
    server.reply("/secure", Reply(200, b"tls ok"))
    dns.add("pinned.test", ["127.0.0.1"], ["10.9.9.9"])
    origin = f"pinned.test:{server.port}"
    policy = FetchPolicy(allowed_origins=frozenset({origin}), ca_file=str(certificates.ca))

    result = fetch(f"https://{origin}/secure", policy)

    assert result.content == b"tls ok"
    assert sni_names == ["pinned.test"]
    assert server.requests_for("/secure")[0].headers["host"] == origin
    assert dns.lookups == ["pinned.test"]
    assert connections == [("127.0.0.1", server.port)]


def test_https_certificate_is_verified(
    tls_server: tuple[LocalHTTPServer, list[str | None]], certificates: Certificates, dns: FakeDNS
) -> None:
    server, _ = tls_server
    server.reply("/secure", Reply(200, b"tls ok"))
    dns.add("pinned.test", ["127.0.0.1"])
    untrusted = FetchPolicy(allowed_origins=frozenset({f"pinned.test:{server.port}"}), retries=2)
    with pytest.raises(FetchError) as caught:
        fetch(f"https://pinned.test:{server.port}/secure", untrusted)
    assert caught.value.kind == "connection"
    assert "certificate verification failed" in caught.value.message
    assert not caught.value.retryable
    # The right CA but another name (the IP address): the certificate does not match.
    wrong_name = allow(server, ca_file=str(certificates.ca))
    with pytest.raises(FetchError) as caught:
        fetch(server.url("/secure"), wrong_name)
    assert "certificate verification failed" in caught.value.message
    assert server.requests_for("/secure") == []


def test_log_paths_off_keeps_paths_and_queries_out_of_the_logs(
        server: LocalHTTPServer, caplog: pytest.LogCaptureFixture) -> None:
    """A source whose URLs carry identifiers (DICOMweb series queries carry Study Instance UIDs)
    logs its requests by origin only, retries included."""
    path = "/dicom-web/studies/1.2.840.99.12345/series"
    server.reply(path, Reply(503), Reply(200, b"[]"))
    policy = FetchPolicy(allowed_origins=frozenset({server.origin}), retries=2, backoff=0.01,
                         log_paths=False)
    with caplog.at_level(logging.DEBUG, logger="catalogue.harvest.http"):
        assert fetch(server.url(path), policy).content == b"[]"
    assert len(server.requests_for(path)) == 2
    assert caplog.records, "the request and the retry are logged"
    assert "1.2.840.99.12345" not in caplog.text
    assert f"{server.origin}/…" in caplog.text
