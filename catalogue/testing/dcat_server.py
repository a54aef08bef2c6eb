"""A local DCAT-AP endpoint for tests and benchmarks: Turtle pages with Hydra paging.

Serves ``/catalog?page=N`` over real HTTP on 127.0.0.1 with ``hydra:next`` links, ETag /
Last-Modified / 304, and ``?modified_since=``. Scenarios for hostile or broken sources are
switched on per test (paging loop, corrupt page, endless body, redirect elsewhere).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

BASE = "@@BASE@@"  # placeholder in record Turtle for the server's origin
PREFIXES = """@prefix dcat: <http://www.w3.org/ns/dcat#> .
@prefix dct: <http://purl.org/dc/terms/> .
@prefix foaf: <http://xmlns.com/foaf/0.1/> .
@prefix vcard: <http://www.w3.org/2006/vcard/ns#> .
@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .
@prefix hydra: <http://www.w3.org/ns/hydra/core#> .
@prefix healthdcatap: <http://healthdataportal.eu/ns/health#> .
"""


@dataclass
class Record:
    """One dataset: its Turtle (without prefixes; ``@@BASE@@`` stands for the server origin)
    and when it last changed."""

    identifier: str
    turtle: str
    modified: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class DcatSource:
    records: list[Record]
    page_size: int = 100
    loop_at_page: int | None = None  # page N links back to page 1
    corrupt_page: int | None = None  # page N is not valid Turtle
    bom_pages: tuple[int, ...] = ()  # these pages start with a UTF-8 byte order mark
    endless_page: int | None = None  # page N streams forever
    redirect_page: tuple[int, str] | None = None  # page N redirects to this URL
    requests: list[str] = field(default_factory=list)
    not_modified: int = 0                  # 304 answers to conditional requests
    page_delay: float = 0.0                # seconds before each page is answered (a slow source)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def page_count(self, records: list[Record]) -> int:
        return max(1, -(-len(records) // self.page_size))


def _selected(source: DcatSource, since: str | None) -> list[Record]:
    if not since:
        return list(source.records)
    threshold = datetime.fromisoformat(since)
    if threshold.tzinfo is None:
        threshold = threshold.replace(tzinfo=UTC)
    return [r for r in source.records if r.modified >= threshold]


def render_page(source: DcatSource, base: str, page: int, since: str | None) -> bytes:
    records = _selected(source, since)
    pages = source.page_count(records)
    chunk = records[(page - 1) * source.page_size : page * source.page_size]
    suffix = f"&modified_since={quote(since, safe='')}" if since else ""
    view = [
        f"<{base}/catalog?page={page}{suffix}> a hydra:PartialCollectionView ;",
        f"  hydra:first <{base}/catalog?page=1{suffix}> ;",
        f"  hydra:last <{base}/catalog?page={pages}{suffix}>",
    ]
    if source.loop_at_page == page:
        view.append(f" ;\n  hydra:next <{base}/catalog?page=1{suffix}>")
    elif page < pages:
        view.append(f" ;\n  hydra:next <{base}/catalog?page={page + 1}{suffix}>")
    body = [
        PREFIXES,
        f"<{base}/catalog> a dcat:Catalog, hydra:Collection ;\n"
        f'  dct:title "Test catalogue"@en ;\n  hydra:totalItems {len(records)} .',
        "".join(view) + " .",
        *[r.turtle.replace(BASE, base) for r in chunk],
    ]
    if chunk:
        body.insert(
            2,
            f"<{base}/catalog> dcat:dataset "
            + ", ".join(f"<{base}/dataset/{r.identifier}>" for r in chunk)
            + " .",
        )
    return "\n".join(body).encode()


def make_handler(source: DcatSource) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            with source.lock:
                source.requests.append(self.path)
            query = parse_qs(parts.query)
            page = int(query.get("page", ["1"])[0])
            since = query.get("modified_since", [None])[0]
            base = f"http://{self.headers['Host']}"
            if parts.path != "/catalog":
                self.send_error(404)
                return
            if source.page_delay:
                time.sleep(source.page_delay)
            if source.redirect_page and source.redirect_page[0] == page:
                self.send_response(302)
                self.send_header("Location", source.redirect_page[1])
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            if source.endless_page == page:
                self.send_response(200)
                self.send_header("Content-Type", "text/turtle")
                self.end_headers()
                try:
                    while True:
                        self.wfile.write(b"# still going\n" * 1000)
                except OSError:
                    return
            if source.corrupt_page == page:
                body = b"@prefix dcat: <http://www.w3.org/ns/dcat#> .\n<a> dcat:dataset <b"
            else:
                body = render_page(source, base, page, since)
                if page in source.bom_pages:
                    body = b"\xef\xbb\xbf" + body
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            newest = max((r.modified for r in source.records), default=datetime.now(UTC))
            if self.headers.get("If-None-Match") == etag:
                with source.lock:
                    source.not_modified += 1
                self.send_response(304)
                self.send_header("ETag", etag)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/turtle; charset=utf-8")
            self.send_header("ETag", etag)
            self.send_header("Last-Modified", format_datetime(newest, usegmt=True))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


class DcatServer:
    """``with DcatServer(source) as server: server.url`` → ``http://127.0.0.1:PORT/catalog``."""

    def __init__(self, source: DcatSource) -> None:
        self.source = source
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), make_handler(source))
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def origin(self) -> str:
        return f"127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"http://{self.origin}/catalog"

    def __enter__(self) -> DcatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def generate_records(n: int, make: Callable[[int], tuple[str, str]]) -> list[Record]:
    """``make(i)`` returns (identifier, turtle) for record i."""
    return [Record(*make(i)) for i in range(n)]
