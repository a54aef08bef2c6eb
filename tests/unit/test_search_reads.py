"""The read connections of the Elasticsearch/OpenSearch backends (``search/backends/reads.py``),
against a real HTTP server on loopback: a read is sent at once and answered later, keep-alive
connections are reused, one the server closed while idle is replaced without losing the read,
an unreachable node is skipped, and every failure surfaces when the answer is read."""

from __future__ import annotations

import base64
import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from catalogue.errors import SearchUnavailable
from catalogue.search.backends.reads import EngineHTTPError, ReadPool
from catalogue.testing.app_server import free_port


class _Engine(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.seen: list[dict[str, Any]] = []   # every request: path, headers, body, connection
        self.status = 200
        self.close_after = False               # close each connection after its answer, silently
        self.hang_up = 0                       # requests read and not answered (closed)
        self.release = threading.Event()       # answers wait for this
        self.release.set()
        self.connections: list[socket.socket] = []

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = super().get_request()
        self.connections.append(conn)
        return conn, address

    def kill(self) -> None:
        """Go away as a stopped node does: no more connections, the open ones reset."""
        self.shutdown()
        self.server_close()
        for conn in self.connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Engine

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.seen.append({"path": self.path, "headers": dict(self.headers),
                                 "body": json.loads(body), "peer": self.client_address[1]})
        if self.server.hang_up:
            self.server.hang_up -= 1
            self.close_connection = True
            return
        self.server.release.wait(10)
        payload = json.dumps({"echo": json.loads(body), "status": self.server.status}).encode()
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        if self.server.close_after:
            self.close_connection = True

    def log_message(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def engine() -> Iterator[_Engine]:
    server = _Engine()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _url(server: _Engine, auth: str = "") -> str:
    return f"http://{auth}127.0.0.1:{server.server_address[1]}"


def test_a_read_is_sent_before_its_answer_is_awaited_and_its_connection_reused() -> None:
    with engine() as server:
        pool = ReadPool([_url(server, "reader:s%40cret@")], timeout=5)
        server.release.clear()  # the engine holds its answer
        sent = pool.send("/idx/_search", b'{"size": 0}')
        for _ in range(100):  # the request reached the engine while nobody waits for it
            if server.seen:
                break
            threading.Event().wait(0.02)
        assert server.seen and server.seen[0]["path"] == "/idx/_search"
        server.release.set()
        assert sent.result() == {"echo": {"size": 0}, "status": 200}
        assert pool.send("/idx/_search", b'{"n": 2}').result()["echo"] == {"n": 2}
        first, second = server.seen
        assert first["peer"] == second["peer"]  # one keep-alive connection
        assert first["headers"]["Authorization"] == "Basic " + base64.b64encode(
            b"reader:s@cret").decode()
        assert first["headers"]["Content-Type"] == "application/json"
        pool.close()


def test_a_connection_the_server_closed_while_idle_is_replaced_without_losing_the_read() -> None:
    with engine() as server:
        pool = ReadPool([_url(server)], timeout=5)
        server.close_after = True  # every connection closed after its answer (no will_close)
        answers = [pool.send("/i/_search", json.dumps({"n": n}).encode()).result()
                   for n in range(5)]
        assert [a["echo"]["n"] for a in answers] == list(range(5))
        assert len({s["peer"] for s in server.seen}) == 5
        pool.close()


def test_a_read_the_server_hung_up_on_is_sent_again_on_a_new_connection() -> None:
    """The server closed a kept-alive connection as the read arrived on it (its idle timeout
    ran out): the read is sent again, once, on a new connection; on a new connection the same
    is a failure of the node."""
    with engine() as server:
        pool = ReadPool([_url(server)], timeout=5)
        assert pool.send("/i/_search", b'{"n": 1}').result()["echo"] == {"n": 1}
        server.hang_up = 1
        assert pool.send("/i/_search", b'{"n": 2}').result()["echo"] == {"n": 2}
        assert [s["body"] for s in server.seen] == [{"n": 1}, {"n": 2}, {"n": 2}]
        assert len({s["peer"] for s in server.seen}) == 2
        pool.close()
        server.hang_up = 1  # no idle connection now: a new one is hung up on
        with pytest.raises(SearchUnavailable):
            pool.send("/i/_search", b'{"n": 3}').result()


def test_an_unreachable_node_is_skipped_and_none_reachable_fails_when_read() -> None:
    with engine() as server:
        dead = f"http://127.0.0.1:{free_port()}"
        pool = ReadPool([dead, _url(server)], timeout=5)
        assert [pool.send("/i/_search", b"{}").result()["status"] for _ in range(4)] == [200] * 4
        assert len(server.seen) == 4
        nowhere = ReadPool([dead], timeout=2)
        sent = nowhere.send("/i/_search", b"{}")  # no exception yet: the caller works on
        with pytest.raises(SearchUnavailable):
            sent.result()


def test_an_error_status_surfaces_with_the_engines_answer() -> None:
    with engine() as server:
        pool = ReadPool([_url(server)], timeout=5)
        server.status = 404
        with pytest.raises(EngineHTTPError) as caught:
            pool.send("/gone/_search", b'{"q": 1}').result()
        assert caught.value.status == 404 and caught.value.info["echo"] == {"q": 1}
        server.status = 200  # the connection stays usable after an error status
        assert pool.send("/i/_search", b"{}").result()["status"] == 200
        assert len({s["peer"] for s in server.seen}) == 1


def test_a_read_that_times_out_is_unavailable_and_an_abandoned_one_is_not_reused() -> None:
    with engine() as server:
        pool = ReadPool([_url(server)], timeout=0.3)
        server.release.clear()
        with pytest.raises(SearchUnavailable):
            pool.send("/i/_search", b"{}").result()
        abandoned = pool.send("/i/_search", b'{"a": 1}')
        abandoned.close()  # its answer will never be read: the connection is dropped
        server.release.set()
        assert pool.send("/i/_search", b'{"b": 2}').result()["echo"] == {"b": 2}
        assert len({s["peer"] for s in server.seen}) == 3


def test_urls_are_taken_as_the_official_clients_take_them() -> None:
    with pytest.raises(ValueError, match="not a search engine URL"):
        ReadPool(["ftp://example.org"], timeout=1)
    with pytest.raises(ValueError):
        ReadPool([], timeout=1)
    with engine() as server:
        prefixed = ReadPool([_url(server) + "/proxy/"], timeout=5)
        prefixed.send("/i/_search", b"{}").result()
        assert server.seen[-1]["path"] == "/proxy/i/_search"


def test_a_node_that_goes_away_with_idle_connections_to_it_fails_over_to_the_next() -> None:
    """Two nodes, connections kept to both; one stops (as when a cluster node is shut down):
    every later read is answered by the other, the stopped node is skipped from then on."""
    with engine() as first, engine() as second:
        pool = ReadPool([_url(first), _url(second)], timeout=5)
        for _ in range(6):  # reads take turns: keep-alive connections to both nodes
            assert pool.send("/i/_search", b"{}").result()["status"] == 200
        assert first.seen and second.seen
        first.kill()
        before = len(second.seen)
        for n in range(8):
            assert pool.send("/i/_search", json.dumps({"n": n}).encode()).result()["echo"] == {
                "n": n}
        assert len(second.seen) - before == 8


def test_a_node_answering_unavailable_sends_the_read_to_the_next_and_the_last_answer_counts(
) -> None:
    with engine() as first, engine() as second:
        first.status = 503  # shutting down, say
        pool = ReadPool([_url(first), _url(second)], timeout=5)
        for _ in range(4):
            assert pool.send("/i/_search", b"{}").result()["status"] == 200
        second.status = 503  # both: the caller gets the status
        with pytest.raises(EngineHTTPError) as caught:
            pool.send("/i/_search", b"{}").result()
        assert caught.value.status == 503


def test_a_node_that_drops_the_read_it_was_sent_passes_it_to_the_next() -> None:
    """The request reached a node that then went away without answering (stopped while the
    read was in flight): the read goes to the next node, not back to the same one."""
    with engine() as first, engine() as second:
        first.hang_up = 1000
        pool = ReadPool([_url(first), _url(second)], timeout=5)
        answers = [pool.send("/i/_search", json.dumps({"n": n}).encode()).result()["echo"]
                   for n in range(4)]
        assert answers == [{"n": n} for n in range(4)]
        assert len(first.seen) == 1  # then skipped as dead
        assert [s["body"]["n"] for s in second.seen] == [0, 1, 2, 3]
