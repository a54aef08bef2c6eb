"""Safe HTTP fetching: the only way harvesters read remote content.

Every URL a harvest source names is untrusted. :func:`fetch` therefore

* accepts only ``http``/``https`` and canonical host spellings (no ``http://2130706433/``);
* resolves the host once, refuses the request if *any* address is loopback, private, link-local
  (cloud metadata), carrier-grade NAT, multicast, reserved or unspecified — also when hidden in an
  IPv6 form (IPv4-mapped, NAT64, 6to4) — unless the source is allow-listed
  (:attr:`FetchPolicy.allow_private`, :attr:`FetchPolicy.allowed_origins`);
* connects to exactly the checked address (no second lookup, so DNS rebinding cannot swap it),
  while sending the original ``Host`` header and verifying TLS against the host name;
* follows redirects itself, putting every target through the same guard, and drops credentials
  when a redirect leaves the original origin;
* bounds each read, the whole call (``total_timeout``) and the body size, before and after
  gzip/deflate decoding (decompression bombs);
* retries transient failures (connection errors, 429, 502, 503, 504) with jittered exponential
  backoff, honouring ``Retry-After`` up to :data:`RETRY_AFTER_CAP` seconds.

Errors are :class:`FetchError` with a ``kind`` and a message that names the URL with credentials
removed. Bodies, tokens and header values are never logged nor put in messages.

Environment proxies are deliberately not used: a proxy would resolve the name again and defeat the
address check.
"""

from __future__ import annotations

import base64
import email.utils
import http.client
import io
import ipaddress
import logging
import random
import re
import socket
import ssl
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote, unquote, urljoin, urlsplit, urlunsplit

from catalogue import __version__
from catalogue.errors import CatalogueError

if TYPE_CHECKING:
    from zlib import _Decompress

    from _typeshed import WriteableBuffer

__all__ = [
    "RETRY_AFTER_CAP",
    "FetchError",
    "FetchErrorKind",
    "FetchPolicy",
    "FetchResult",
    "check_url",
    "fetch",
    "redact_url",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Longest ``Retry-After`` (seconds) that is waited for; a server asking for more fails the fetch.
RETRY_AFTER_CAP = 60.0

FetchErrorKind = Literal[
    "bad_url",  # not a URL we can fetch (syntax, host spelling, port)
    "unsupported_scheme",  # anything but http/https, also as a redirect target
    "blocked_address",  # the guard refused the host's address
    "too_large",  # Content-Length or body (raw or decoded) above max_bytes
    "timeout",  # connect/read timeout, or total_timeout reached
    "connection",  # DNS, TCP, TLS or HTTP protocol failure
    "http_status",  # a status we do not accept (see FetchError.http_status)
    "too_many_redirects",  # more than max_redirects, or a redirect loop
    "bad_content",  # Content-Encoding unknown, or a corrupt/truncated gzip/deflate body
    "bad_request",  # caller-supplied headers or token not valid in HTTP
]

_SCHEMES: dict[str, int] = {"http": 80, "https": 443}
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUSES = frozenset({429, 502, 503, 504})
_CHUNK = 64 * 1024
# Headers fetch() owns: a caller setting them would break framing, decoding or pinning.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "accept-encoding",
        "te",
        "trailer",
        "upgrade",
        "keep-alive",
        "proxy-connection",
    }
)
# Sent only to the origin of the URL the caller asked for, never across a redirect to another.
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_SECRET_PARAM_WORDS = ("token", "key", "secret", "pass", "pwd", "sig", "auth", "session", "cred")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
_TOKEN = re.compile(r"[\x21-\x7e]+")
_HOST_NAME = re.compile(r"[a-z0-9_.-]+")
_NUMERIC_LABEL = re.compile(r"[0-9]+|0x[0-9a-f]*")

# Address blocks a harvester must never reach unless an administrator allows the source.
# Checked in order; IPv6 forms that embed an IPv4 address are unwrapped first.
_BLOCKED_NETWORKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "carrier-grade NAT"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata)"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved (IETF protocol assignments)"),
    ("192.0.2.0/24", "reserved (documentation)"),
    ("192.88.99.0/24", "reserved (6to4 relay)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved (benchmarking)"),
    ("198.51.100.0/24", "reserved (documentation)"),
    ("203.0.113.0/24", "reserved (documentation)"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),  # includes 255.255.255.255
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("::/96", "reserved (IPv4-compatible)"),
    ("64:ff9b:1::/48", "private (local NAT64)"),
    ("100::/64", "reserved (discard)"),
    ("2001::/23", "reserved (IETF protocol assignments, Teredo)"),
    ("2001:db8::/32", "reserved (documentation)"),
    ("3fff::/20", "reserved (documentation)"),
    ("fc00::/7", "private (unique local)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private (site-local)"),
    ("ff00::/8", "multicast"),
)
_BLOCKED = tuple((ipaddress.ip_network(net), reason) for net, reason in _BLOCKED_NETWORKS)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_IPV4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")


@dataclass(frozen=True)
class FetchPolicy:
    """Limits and permissions of one harvest source. The defaults suit a public endpoint."""

    timeout: float = 30.0  # longest wait for any single read or write
    connect_timeout: float = 10.0
    total_timeout: float = 300.0  # the whole fetch() call: redirects, retries and the body
    max_bytes: int = 50 * 1024 * 1024  # received and decoded body
    retries: int = 3  # on connection errors, timeouts, 429, 502, 503, 504
    backoff: float = 0.5  # first retry delay in seconds; doubles each retry, with jitter
    max_redirects: int = 5
    allow_private: bool = False  # the whole source may use any address (admin decision)
    allowed_origins: frozenset[str] = frozenset()  # "host:port" that pass the address guard
    user_agent: str = f"cancer-imaging-catalogue/{__version__} (+harvester)"
    ca_file: str | None = None  # extra trust anchors (PEM) for sources with a private CA
    log_paths: bool = True  # False: logs show the origin only (paths that carry identifiers)

    def __post_init__(self) -> None:
        for name in ("timeout", "connect_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"FetchPolicy.{name} must be positive")
        if self.max_bytes <= 0:
            raise ValueError("FetchPolicy.max_bytes must be positive")
        if self.retries < 0 or self.max_redirects < 0 or self.backoff < 0:
            raise ValueError("FetchPolicy.retries, max_redirects and backoff must not be negative")

    def allows_origin(self, origin: str) -> bool:
        """True if ``origin`` ("host:port", IPv6 in brackets) is on the allow-list."""
        return origin.lower() in {entry.strip().lower() for entry in self.allowed_origins}


@dataclass
class FetchResult:
    """A successful response (2xx, or 304 to a conditional request) after redirects."""

    url: str  # final URL after redirects
    status: int
    headers: dict[str, str]  # lower-case names; repeated headers joined with ", "
    content: bytes  # decoded (gzip/deflate removed); empty when not_modified
    not_modified: bool = False

    @property
    def content_type(self) -> str | None:
        return self.headers.get("content-type")

    @property
    def etag(self) -> str | None:
        return self.headers.get("etag")

    @property
    def last_modified(self) -> str | None:
        return self.headers.get("last-modified")


class FetchError(CatalogueError):
    """A remote resource could not be fetched. ``message`` and ``url`` carry no credentials."""

    status = 502
    code = "fetch_failed"

    def __init__(
        self,
        message: str,
        *,
        url: str,
        kind: FetchErrorKind,
        http_status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, details={"url": url, "kind": kind, "http_status": http_status})
        self.url = url  # redacted
        self.kind: FetchErrorKind = kind
        self.http_status = http_status  # the remote status, for kind "http_status"
        self.retryable = retryable  # transient: trying again later may succeed
        self.retry_after = retry_after  # seconds the server asked us to wait


def redact_url(url: str) -> str:
    """``url`` without user info, fragment, or values of query parameters that look secret."""
    try:
        parts = urlsplit(url.strip())
        netloc = parts.netloc.rpartition("@")[2]
    except ValueError:
        return "<invalid URL>"
    query = (
        "&".join(_redact_param(param) for param in parts.query.split("&")) if parts.query else ""
    )
    return _printable(urlunsplit((parts.scheme, netloc, parts.path, query, "")), 300)


def _printable(text: str, limit: int) -> str:
    """``text`` safe to put in a log line: no control characters, at most ``limit`` characters."""
    shown = "".join(ch if ch.isprintable() else "?" for ch in text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


def _redact_param(param: str) -> str:
    name, sep, _value = param.partition("=")
    if sep and any(word in unquote(name).lower() for word in _SECRET_PARAM_WORDS):
        return f"{name}=REDACTED"
    return param


def _error(
    kind: FetchErrorKind,
    url: str,
    what: str,
    *,
    http_status: int | None = None,
    retryable: bool = False,
    retry_after: float | None = None,
) -> FetchError:
    shown = redact_url(url)
    return FetchError(
        f"cannot fetch {shown}: {what}",
        url=shown,
        kind=kind,
        http_status=http_status,
        retryable=retryable,
        retry_after=retry_after,
    )


# --- URL parsing and the address guard -------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """A parsed, syntactically safe http(s) URL."""

    url: str  # as requested, without fragment
    scheme: str
    host: str  # ASCII, lower-case, no brackets, no trailing dot
    port: int
    request_target: str  # path and query, ASCII only
    literal: IPAddress | None  # the host when it is an IP address
    username: str | None
    password: str | None

    @property
    def netloc_host(self) -> str:
        return f"[{self.host}]" if isinstance(self.literal, ipaddress.IPv6Address) else self.host

    @property
    def origin(self) -> str:
        """``host:port``, the form used by :attr:`FetchPolicy.allowed_origins`."""
        return f"{self.netloc_host}:{self.port}"

    @property
    def site(self) -> tuple[str, str, int]:
        """Scheme, host and port: credentials are only sent within one site."""
        return (self.scheme, self.host, self.port)

    @property
    def key(self) -> tuple[str, str, int, str]:
        """What identifies the resource, for redirect-loop detection."""
        return (self.scheme, self.host, self.port, self.request_target)

    @property
    def host_header(self) -> str:
        if self.port == _SCHEMES[self.scheme]:
            return self.netloc_host
        return self.origin


def _parse(url: str) -> _Target:
    raw = url.strip()
    if not raw or any(ch <= " " or ch == "\x7f" for ch in raw):
        raise _error("bad_url", url, "the URL is empty or contains spaces or control characters")
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError as exc:
        raise _error("bad_url", url, f"the URL is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        what = f"scheme {scheme!r} is not allowed" if scheme else "the URL has no scheme"
        raise _error("unsupported_scheme", url, f"{what}; only http and https are fetched")
    authority = parts.netloc.rpartition("@")[2]
    if not parts.hostname or "\\" in parts.netloc:
        raise _error("bad_url", url, "the URL has no valid host")
    if port == 0:
        raise _error("bad_url", url, "port 0 is not valid")
    host, literal = _parse_host(parts.hostname, bracketed=authority.startswith("["), url=url)
    path = parts.path or "/"
    target = f"{path}?{parts.query}" if parts.query else path
    # Keep the caller's escaping; only characters HTTP cannot carry (non-ASCII) are encoded.
    target = quote(target, safe="/?:@!$&'()*+,;=%[]~-._")
    return _Target(
        url=urlunsplit((parts.scheme, parts.netloc, parts.path, parts.query, "")),
        scheme=scheme,
        host=host,
        port=port or _SCHEMES[scheme],
        request_target=target,
        literal=literal,
        username=unquote(parts.username) if parts.username is not None else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def _parse_host(hostname: str, *, bracketed: bool, url: str) -> tuple[str, IPAddress | None]:
    """The host in ASCII and, for an IP address, its value. Refuses ambiguous spellings."""
    if bracketed:
        if "%" in hostname:
            raise _error("bad_url", url, "IPv6 zone identifiers are not allowed")
        try:
            v6 = ipaddress.IPv6Address(hostname)
        except ValueError:
            raise _error("bad_url", url, "the URL has no valid host") from None
        return str(v6), v6
    try:
        host = hostname.encode("idna").decode("ascii").lower().rstrip(".")
    except UnicodeError:
        raise _error("bad_url", url, "the host name is not valid") from None
    if not host or not _HOST_NAME.fullmatch(host):
        raise _error("bad_url", url, "the host name is not valid")
    # Like the WHATWG URL parser: a host whose last label is a number is an IPv4 address.
    # Only the canonical dotted quad is accepted; resolvers read "2130706433", "0x7f.1",
    # "0177.0.0.1" or "127.1" as 127.0.0.1, and such spellings exist only to slip past filters.
    if _NUMERIC_LABEL.fullmatch(host.rsplit(".", 1)[-1]):
        try:
            v4 = ipaddress.IPv4Address(host)
        except ValueError:
            raise _error(
                "bad_url", url, f"host {host!r} is a non-canonical IP address spelling"
            ) from None
        return str(v4), v4
    return host, None


def _blocked_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be reached, or None if it is a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            reason = _blocked_reason(embedded)
            return f"{reason} (embedded in IPv6)" if reason else None
    for network, reason in _BLOCKED:
        if address.version == network.version and address in network:
            return reason
    if not address.is_global:  # whatever this Python release knows beyond the table
        return "non-global"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _IPV4_TRANSLATED:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _resolve(target: _Target) -> list[IPAddress]:
    """All addresses of the host, in resolver order (the literal itself for an IP host)."""
    if target.literal is not None:
        return [target.literal]
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        transient = exc.errno == socket.EAI_AGAIN
        raise _error(
            "connection", target.url, f"cannot resolve host {target.host!r}", retryable=transient
        ) from None
    except (UnicodeError, OSError):
        raise _error("connection", target.url, f"cannot resolve host {target.host!r}") from None
    addresses: list[IPAddress] = []
    for family, _type, _proto, _name, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise _error("connection", target.url, f"host {target.host!r} has no IP address")
    return addresses


def _check(target: _Target, policy: FetchPolicy) -> list[str]:
    addresses = _resolve(target)
    if not (policy.allow_private or policy.allows_origin(target.origin)):
        for address in addresses:
            reason = _blocked_reason(address)
            if reason is None:
                continue
            # For a name, do not reveal which internal address it resolved to.
            subject = f"{address} is" if target.literal else f"host {target.host!r} resolves to"
            raise _error("blocked_address", target.url, f"refused: {subject} a {reason} address")
    return [str(address) for address in addresses]


def check_url(url: str, policy: FetchPolicy) -> list[str]:
    """Resolve ``url``'s host and return its addresses if the policy allows all of them.

    Raises :class:`FetchError` (``bad_url``, ``unsupported_scheme``, ``blocked_address`` or
    ``connection`` when the name does not resolve). Never opens a connection.
    """
    return _check(_parse(url), policy)


# --- One pinned HTTP exchange ----------------------------------------------------------------


class _DeadlineExceeded(TimeoutError):
    """total_timeout reached."""


class _DeadlineSocket:
    """A socket front that bounds every read and write by the per-read timeout and the deadline.

    http.client reads through ``makefile()``; the reader below re-arms the socket timeout before
    each ``recv``, so a peer that trickles bytes (headers or body) cannot outlive the deadline.
    Like :class:`socket.socket`, the real socket closes once it and all its readers are closed.
    """

    def __init__(self, sock: socket.socket, read_timeout: float, deadline: float) -> None:
        self._sock = sock
        self._read_timeout = read_timeout
        self._deadline = deadline
        self._readers = 0
        self._closed = False

    def arm(self) -> None:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded("total_timeout reached")
        self._sock.settimeout(min(self._read_timeout, remaining))

    def sendall(self, data: bytes) -> None:
        self.arm()
        self._sock.sendall(data)

    def recv_into(self, buffer: WriteableBuffer) -> int:
        self.arm()
        return self._sock.recv_into(buffer)

    def makefile(self, mode: str = "rb") -> io.BufferedReader:
        if mode != "rb":
            raise ValueError("only binary reading is supported")
        self._readers += 1
        return io.BufferedReader(_DeadlineReader(self))

    def reader_closed(self) -> None:
        self._readers -= 1
        if self._closed and self._readers <= 0:
            self._sock.close()

    def close(self) -> None:
        self._closed = True
        if self._readers <= 0:
            self._sock.close()


class _DeadlineReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        super().__init__()
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        return self._sock.recv_into(buffer)

    def close(self) -> None:
        if not self.closed:
            self._sock.reader_closed()
        super().close()


@lru_cache(maxsize=8)
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    context = ssl.create_default_context()  # certificate and host name verification on
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _open_socket(
    addresses: Sequence[str], port: int, timeout: float, deadline: float
) -> socket.socket:
    """A TCP connection to the first reachable checked address; never resolves a name."""
    last: OSError = OSError("no address to connect to")
    for address in addresses:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _DeadlineExceeded("total_timeout reached")
        family, kind, proto, _name, sockaddr = socket.getaddrinfo(
            address, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(min(timeout, remaining))
            sock.connect(sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            sock.close()
            last = exc
            continue
        return sock
    raise last


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to already-checked addresses, with the host name for Host and TLS."""

    def __init__(
        self, target: _Target, addresses: Sequence[str], policy: FetchPolicy, deadline: float
    ) -> None:
        super().__init__(target.host, target.port, timeout=policy.connect_timeout)
        self._target = target
        self._addresses = list(addresses)
        self._policy = policy
        self._deadline = deadline

    def connect(self) -> None:
        policy, target = self._policy, self._target
        sock = _open_socket(self._addresses, target.port, policy.connect_timeout, self._deadline)
        try:
            if target.scheme == "https":
                remaining = self._deadline - time.monotonic()
                sock.settimeout(max(0.001, min(policy.connect_timeout, remaining)))
                # SNI and certificate check use the name from the URL, not the pinned address.
                sock = _tls_context(policy.ca_file).wrap_socket(sock, server_hostname=target.host)
        except BaseException:
            sock.close()
            raise
        self.sock = _DeadlineSocket(sock, policy.timeout, self._deadline)


@dataclass
class _Response:
    status: int
    reason: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes = b""


class _BodyError(Exception):
    def __init__(self, kind: FetchErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind: FetchErrorKind = kind


class _Body:
    """Collects a body, undoing gzip/deflate as it arrives, within the byte cap on both sides."""

    def __init__(self, coding: str, limit: int) -> None:
        self._coding = coding  # "", "gzip" or "deflate"
        self._limit = limit
        self._received = 0
        self._size = 0
        self._parts: list[bytes] = []
        self._inflater: _Decompress | None = None
        self._head = b""  # first bytes of a stream, until its format is known
        self._streams = 0
        self._ignore_rest = False

    def feed(self, chunk: bytes) -> None:
        self._received += len(chunk)
        if self._received > self._limit:
            raise _BodyError("too_large", f"the body is larger than max_bytes ({self._limit})")
        if self._coding:
            try:
                self._inflate(chunk)
            except zlib.error:
                raise _BodyError("bad_content", f"the {self._coding} body is corrupt") from None
        else:
            self._keep(chunk)

    def finish(self) -> bytes:
        if self._inflater is not None or (self._head and self._streams == 0):
            raise _BodyError("bad_content", f"the {self._coding} body is truncated")
        return b"".join(self._parts)

    def _keep(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise _BodyError(
                "too_large", f"the decoded body is larger than max_bytes ({self._limit})"
            )
        if data:
            self._parts.append(data)

    def _inflate(self, data: bytes) -> None:
        while data and not self._ignore_rest:
            if self._inflater is None:
                self._head += data
                if len(self._head) < 2:
                    return
                wbits = self._wbits(self._head)
                if wbits is None:  # bytes after the last stream (padding): not content
                    self._ignore_rest = True
                    return
                self._inflater = zlib.decompressobj(wbits)
                self._streams += 1
                data, self._head = self._head, b""
            # Never ask for more than one byte past the cap: a bomb cannot allocate more.
            self._keep(self._inflater.decompress(data, self._limit - self._size + 1))
            if self._inflater.eof:
                data = self._inflater.unused_data
                self._inflater = None
            else:
                data = self._inflater.unconsumed_tail

    def _wbits(self, head: bytes) -> int | None:
        if self._streams:  # a further gzip member may follow; anything else is ignored
            return (
                16 + zlib.MAX_WBITS if self._coding == "gzip" and head[:2] == b"\x1f\x8b" else None
            )
        if self._coding == "gzip":
            return 16 + zlib.MAX_WBITS
        # "deflate" should be zlib-wrapped (RFC 9110), but some servers send raw deflate.
        zlib_header = (head[0] & 0x0F) == 8 and ((head[0] << 8) | head[1]) % 31 == 0
        return zlib.MAX_WBITS if zlib_header else -zlib.MAX_WBITS


def _content_coding(value: str | None, url: str) -> str:
    coding = (value or "").strip().lower()
    if coding in ("", "identity"):
        return ""
    if coding in ("gzip", "x-gzip"):
        return "gzip"
    if coding == "deflate":
        return "deflate"
    raise _error("bad_content", url, f"unsupported Content-Encoding {coding[:40]!r}")


def _response_headers(response: http.client.HTTPResponse) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in response.getheaders():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP-date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _status_error(target: _Target, response: http.client.HTTPResponse) -> FetchError:
    status = response.status
    what = f"HTTP {status} {_printable(response.reason, 80)}".rstrip()
    retry_after = _retry_after(response.getheader("retry-after"))
    if retry_after is not None:
        what += f" (Retry-After {retry_after:.0f} s)"
    return _error(
        "http_status",
        target.url,
        what,
        http_status=status,
        retryable=status in _RETRY_STATUSES,
        retry_after=retry_after,
    )


def _read_body(target: _Target, response: http.client.HTTPResponse, policy: FetchPolicy) -> bytes:
    if response.length is not None and response.length > policy.max_bytes:
        raise _error(
            "too_large",
            target.url,
            f"Content-Length {response.length} is larger than max_bytes ({policy.max_bytes})",
        )
    body = _Body(
        _content_coding(response.getheader("content-encoding"), target.url), policy.max_bytes
    )
    try:
        while chunk := response.read(_CHUNK):
            body.feed(chunk)
        return body.finish()
    except _BodyError as exc:
        raise _error(exc.kind, target.url, str(exc)) from None


def _exchange(
    target: _Target,
    addresses: Sequence[str],
    headers: Sequence[tuple[str, str]],
    policy: FetchPolicy,
    deadline: float,
) -> _Response:
    """One GET on a fresh pinned connection. Raises FetchError for anything but 2xx/3xx."""
    connection = _PinnedConnection(target, addresses, policy, deadline)
    try:
        connection.putrequest(
            "GET", target.request_target, skip_host=True, skip_accept_encoding=True
        )
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        try:
            status = response.status
            if status in _REDIRECT_STATUSES or status == 304:
                content = b""  # not read: the connection is closed below
            elif 200 <= status < 300:
                content = _read_body(target, response, policy)
            else:
                raise _status_error(target, response)
            return _Response(status, response.reason, _response_headers(response), content)
        finally:
            response.close()
    except FetchError:
        raise
    except TimeoutError:
        if time.monotonic() >= deadline:
            raise _error(
                "timeout",
                target.url,
                f"not complete within total_timeout ({policy.total_timeout} s)",
            ) from None
        raise _error(
            "timeout", target.url, "the server did not answer in time", retryable=True
        ) from None
    except ssl.SSLCertVerificationError as exc:
        what = f"TLS certificate verification failed ({exc.verify_message})"
        raise _error("connection", target.url, what) from None
    except ssl.SSLError as exc:
        raise _error("connection", target.url, f"TLS failed ({exc.reason})") from None
    except http.client.RemoteDisconnected:
        what = "the server closed the connection without a response"
        raise _error("connection", target.url, what, retryable=True) from None
    except http.client.IncompleteRead:
        what = "the connection closed before the body was complete"
        raise _error("connection", target.url, what, retryable=True) from None
    except http.client.HTTPException as exc:
        what = f"invalid HTTP response ({type(exc).__name__})"
        raise _error("connection", target.url, what, retryable=True) from None
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        raise _error("connection", target.url, what, retryable=True) from None
    finally:
        connection.close()


# --- Retries, redirects, headers -------------------------------------------------------------


def _delay(error: FetchError, policy: FetchPolicy, attempt: int) -> float | None:
    """Seconds to wait before retry number ``attempt + 1``, or None to give up."""
    if error.retry_after is not None:
        return error.retry_after if error.retry_after <= RETRY_AFTER_CAP else None
    base = policy.backoff * 2**attempt
    return base / 2 + random.uniform(0, base / 2)  # noqa: S311 (jitter, not a secret)


def _fetch_once(
    target: _Target,
    addresses: list[str] | None,
    headers: Sequence[tuple[str, str]],
    policy: FetchPolicy,
    deadline: float,
) -> _Response:
    """GET ``target`` without following redirects, retrying transient failures.

    ``addresses`` are the already-checked addresses; if None the host is resolved and checked
    here, once: retries reuse the same addresses.
    """
    attempt = 0
    while True:
        try:
            if addresses is None:
                addresses = _check(target, policy)
            started = time.monotonic()
            response = _exchange(target, addresses, headers, policy, deadline)
            log.debug(
                "GET %s -> %d (%d bytes, %.0f ms)",
                _loggable(redact_url(target.url), policy),
                response.status,
                len(response.content),
                (time.monotonic() - started) * 1000,
            )
            return response
        except FetchError as error:
            if not error.retryable or attempt >= policy.retries:
                raise
            delay = _delay(error, policy, attempt)
            if delay is None or time.monotonic() + delay >= deadline:
                raise
            attempt += 1
            message = error.message if policy.log_paths else error.message.replace(
                error.url, _loggable(error.url, policy))
            log.warning("%s; retry %d of %d in %.1f s", message, attempt, policy.retries, delay)
            time.sleep(delay)


def _loggable(url: str, policy: FetchPolicy) -> str:
    """``url`` as logs may show it (without its path and query when the policy says so)."""
    if policy.log_paths:
        return url
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…"


def _checked_headers(url: str, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Caller-supplied headers, refused if not valid HTTP. Messages never contain values."""
    checked = []
    for name, value in pairs:
        if not _HEADER_NAME.fullmatch(name):
            raise _error("bad_request", url, f"header name {name[:40]!r} is not valid")
        if name.lower() in _RESERVED_HEADERS:
            raise _error("bad_request", url, f"header {name!r} is set by fetch() itself")
        if not _HEADER_VALUE.fullmatch(value):
            raise _error("bad_request", url, f"the value of header {name!r} is not valid")
        checked.append((name, value))
    return checked


def _request_headers(
    url: str,
    policy: FetchPolicy,
    *,
    accept: str | None,
    etag: str | None,
    last_modified: str | None,
    extra: Mapping[str, str] | None,
    bearer_token: str | None,
) -> dict[str, tuple[str, str]]:
    """Headers for every hop, keyed by lower-case name; explicit arguments win over ``extra``."""
    headers: dict[str, tuple[str, str]] = {
        "user-agent": ("User-Agent", policy.user_agent),
        "accept": ("Accept", "*/*"),
    }
    explicit = [("Accept", accept), ("If-None-Match", etag), ("If-Modified-Since", last_modified)]
    pairs = [*(extra or {}).items(), *((name, v) for name, v in explicit if v is not None)]
    for name, value in _checked_headers(url, pairs):
        headers[name.lower()] = (name, value)
    if bearer_token is not None:
        if not _TOKEN.fullmatch(bearer_token):
            raise _error("bad_request", url, "the bearer token contains characters not allowed")
        headers["authorization"] = ("Authorization", f"Bearer {bearer_token}")
    return headers


def _hop_headers(
    headers: Mapping[str, tuple[str, str]], target: _Target, first: _Target
) -> list[tuple[str, str]]:
    """Headers to send to ``target``: credentials only within the site the caller named."""
    same_site = target.site == first.site
    result = [("Host", target.host_header)]
    result += [pair for key, pair in headers.items() if same_site or key not in _CREDENTIAL_HEADERS]
    if same_site and "authorization" not in headers and first.username is not None:
        basic = f"{first.username}:{first.password or ''}".encode()
        result.append(("Authorization", f"Basic {base64.b64encode(basic).decode('ascii')}"))
    result += [("Accept-Encoding", "gzip, deflate"), ("Connection", "close")]
    return result


def _follow(current: _Target, location: str | None, policy: FetchPolicy) -> _Target:
    """The redirect target, parsed; raises with both URLs named if it is not acceptable."""
    if not location:
        raise _error("http_status", current.url, "redirect without a Location header")
    try:
        return _parse(urljoin(current.url, location.strip()))
    except FetchError as exc:
        raise _redirect_refused(current, exc) from None


def _redirect_refused(current: _Target, exc: FetchError) -> FetchError:
    reason = exc.message.removeprefix(f"cannot fetch {exc.url}: ")
    return FetchError(
        f"cannot fetch {redact_url(current.url)}: redirect to {exc.url} refused: {reason}",
        url=exc.url,
        kind=exc.kind,
        retryable=exc.retryable,
    )


def fetch(
    url: str,
    policy: FetchPolicy = FetchPolicy(),  # frozen, so safe as a default
    *,
    etag: str | None = None,
    last_modified: str | None = None,
    accept: str | None = None,
    headers: Mapping[str, str] | None = None,
    bearer_token: str | None = None,
) -> FetchResult:
    """GET ``url`` under ``policy`` and return the decoded body.

    ``etag``/``last_modified`` (from an earlier :class:`FetchResult`) make the request
    conditional; an unchanged resource comes back with ``not_modified=True`` and no content.
    ``bearer_token`` (or user info in ``url``) is sent only to the origin of ``url``.
    The whole call, including redirects and retries, ends within ``policy.total_timeout``.
    Raises :class:`FetchError`.
    """
    deadline = time.monotonic() + policy.total_timeout
    first = current = _parse(url)
    base_headers = _request_headers(
        url,
        policy,
        accept=accept,
        etag=etag,
        last_modified=last_modified,
        extra=headers,
        bearer_token=bearer_token,
    )
    addresses: list[str] | None = None
    seen = {current.key}
    for hop in range(policy.max_redirects + 1):
        hop_headers = _hop_headers(base_headers, current, first)
        response = _fetch_once(current, addresses, hop_headers, policy, deadline)
        if response.status not in _REDIRECT_STATUSES:
            return FetchResult(
                url=current.url,
                status=response.status,
                headers=response.headers,
                content=response.content,
                not_modified=response.status == 304,
            )
        following = _follow(current, response.headers.get("location"), policy)
        if following.key in seen:
            what = f"redirect loop back to {redact_url(following.url)}"
            raise _error("too_many_redirects", current.url, what)
        if hop == policy.max_redirects:
            break
        try:  # every redirect target passes the same guard, before any connection
            addresses = _check(following, policy)
        except FetchError as exc:
            raise _redirect_refused(current, exc) from None
        seen.add(following.key)
        current = following
    what = f"more than max_redirects ({policy.max_redirects}) redirects"
    raise _error("too_many_redirects", url, what)
