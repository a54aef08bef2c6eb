"""A stand-in FHIR R4 REST server for harvester tests: real HTTP on 127.0.0.1, standard search.

Serves resources loaded from Bulk Data NDJSON files (e.g. the Synthea sample in
``tests/data/fhir/synthea``) under ``http://127.0.0.1:PORT/fhir``:

- ``GET /metadata``: a CapabilityStatement with ``fhirVersion`` (public, as on SMART servers);
- ``GET /{Type}`` and ``POST /{Type}/_search``: a ``searchset`` Bundle with ``total``,
  ``entry[].fullUrl/resource/search.mode`` and ``self``/``next`` links. Parameters: ``_count``,
  ``_include={Type}:subject|patient`` (the referenced Patients once per page, mode
  ``include``), ``_lastUpdated=[eq|gt|ge|lt|le]instant`` (repeatable), ``_id``,
  ``subject``/``patient``, ``_sort=[-]_lastUpdated|[-]_id``, ``_summary=count``. Unknown
  parameters are rejected with 400, as a strict server does. Paging works on a snapshot taken
  by the first request, so ``put()`` during a harvest does not shift pages; ``next`` links are
  opaque (``?_getpages=TOKEN&_getpagesoffset=N``, HAPI style);
- ``GET /{Type}/{id}``: one resource.

With ``token`` every request except ``/metadata`` needs ``Authorization: Bearer TOKEN`` (401
otherwise). Errors are OperationOutcomes; bodies are ``application/fhir+json``. Resources without
``meta.lastUpdated`` get the load instant; :meth:`FHIRServer.put` stores a resource with a
strictly newer one. :meth:`FHIRServer.fail_next` and :meth:`FHIRServer.delay_next` inject
faults; :attr:`FHIRServer.requests` records every request.

Example (pytest)::

    with FHIRServer("tests/data/fhir/synthea", token="s3cret", page_size=20) as server:
        server.fail_next(status=503, times=2)
        harvest(server.base_url, token="s3cret")
        assert len(server.requests_for("/ImagingStudy")) >= 3

``serve_fhir(...)`` is the same as a context manager that yields only the base URL.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socketserver
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from catalogue.testing.http_server import BackgroundHTTPServer

__all__ = ["FHIRServer", "RecordedRequest", "load_ndjson", "serve_fhir"]

Resource = dict[str, Any]
FHIR_JSON = "application/fhir+json; charset=utf-8"
BASE_PATH = "/fhir"
MAX_COUNT = 1000
DEFAULT_TYPES = ("Patient", "ImagingStudy", "Condition")
# Reference elements that _include may follow, per resource type (search parameter → element).
INCLUDES: Mapping[str, Mapping[str, str]] = {
    "ImagingStudy": {"subject": "subject", "patient": "subject"},
    "Condition": {"subject": "subject", "patient": "subject"},
    "Observation": {"subject": "subject", "patient": "subject"},
    "Procedure": {"subject": "subject", "patient": "subject"},
    "DiagnosticReport": {"subject": "subject", "patient": "subject"},
    "Encounter": {"subject": "subject", "patient": "subject"},
}
_INSTANT = re.compile(
    r"(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:T(?P<h>\d{2}):(?P<mi>\d{2})"
    r"(?::(?P<s>\d{2})(?:\.(?P<f>\d+))?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?"
)
_PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb", "ap")


class _SearchError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # below the base, with query: "/ImagingStudy?_count=10"; "?_getpages=.."
    headers: dict[str, str]  # lower-case names


@dataclass
class _Fault:
    times: int
    status: int | None  # None: only delay, then answer normally
    delay: float
    retry_after: int | None


@dataclass(frozen=True)
class _Snapshot:
    resource_type: str
    matches: list[Resource]
    includes: tuple[str, ...]  # reference elements to include
    count: int


def load_ndjson(source: str | Path | Iterable[Mapping[str, Any]]) -> list[Resource]:
    """Resources from a folder of ``*.ndjson`` files, one NDJSON file, or an iterable of dicts."""
    if isinstance(source, str | Path):
        path = Path(source)
        files = sorted(path.glob("*.ndjson")) if path.is_dir() else [path]
        resources: list[Resource] = []
        for file in files:
            with file.open(encoding="utf-8") as lines:
                resources.extend(json.loads(line) for line in lines if line.strip())
        return resources
    return [copy.deepcopy(dict(resource)) for resource in source]


def _format_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _instant_range(value: str) -> tuple[datetime, datetime]:
    """The range ``[start, end)`` a FHIR date/dateTime/instant stands for (its precision)."""
    # A '+' offset sent unencoded in a query string arrives as a space.
    match = _INSTANT.fullmatch(value.strip().replace(" ", "+"))
    if match is None:
        raise ValueError(f"not a FHIR date/instant: {value!r}")
    parts = match.groupdict()
    tz = UTC
    if parts["tz"] and parts["tz"] != "Z":
        sign = 1 if parts["tz"][0] == "+" else -1
        hours, minutes = int(parts["tz"][1:3]), int(parts["tz"][4:6])
        tz = timezone(sign * timedelta(hours=hours, minutes=minutes))
    year = int(parts["y"])
    if parts["mo"] is None:
        start = datetime(year, 1, 1, tzinfo=tz)
        return start, start.replace(year=year + 1)
    month = int(parts["mo"])
    if parts["d"] is None:
        start = datetime(year, month, 1, tzinfo=tz)
        end = start.replace(year=year + 1, month=1) if month == 12 else start.replace(
            month=month + 1)
        return start, end
    day = int(parts["d"])
    if parts["h"] is None:
        start = datetime(year, month, day, tzinfo=tz)
        return start, start + timedelta(days=1)
    hour, minute = int(parts["h"]), int(parts["mi"])
    if parts["s"] is None:
        start = datetime(year, month, day, hour, minute, tzinfo=tz)
        return start, start + timedelta(minutes=1)
    fraction = parts["f"] or ""
    micro = int((fraction + "000000")[:6])
    start = datetime(year, month, day, hour, minute, int(parts["s"]), micro, tzinfo=tz)
    step = timedelta(microseconds=10 ** (6 - min(len(fraction), 6))) if fraction else timedelta(
        seconds=1)
    return start, start + step


def _date_matches(prefix: str, value: tuple[datetime, datetime],
                  target: tuple[datetime, datetime]) -> bool:
    """FHIR date search: does ``target`` (the resource's range) satisfy ``prefix`` ``value``?"""
    lo, hi = value
    t_lo, t_hi = target
    checks = {
        "eq": lo <= t_lo and t_hi <= hi,
        "ne": not (lo <= t_lo and t_hi <= hi),
        "gt": t_hi > hi,
        "ge": t_hi > lo,
        "lt": t_lo < lo,
        "le": t_lo < hi,
        "sa": t_lo >= hi,
        "eb": t_hi <= lo,
    }
    if prefix not in checks:
        raise _SearchError(400, "not-supported", f"date prefix {prefix!r} is not supported")
    return checks[prefix]


def _outcome(code: str, message: str) -> Resource:
    return {"resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": code, "diagnostics": message}]}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: FHIRServer

    def server_bind(self) -> None:
        # HTTPServer.server_bind would look up the host's FQDN (a DNS query): not wanted here.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that time out and hang up are part of the tests


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end eventually
    disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall
    server: _HTTPServer

    def do_GET(self) -> None:
        self.server.owner._handle(self, b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.owner._handle(self, self.rfile.read(length) if length else b"")

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FHIRServer(BackgroundHTTPServer):
    """A FHIR R4 REST server on a free port of 127.0.0.1 (see the module docstring)."""

    def __init__(
        self,
        resources: str | Path | Iterable[Mapping[str, Any]] = (),
        *,
        token: str | None = None,
        page_size: int = 50,
        fhir_version: str = "4.0.1",
        host: str = "127.0.0.1",
    ) -> None:
        super().__init__()
        self.token = token
        self.page_size = page_size
        self.fhir_version = fhir_version
        self.host = host
        self.requests: list[RecordedRequest] = []
        # Types served even when none are loaded (an empty search is not a 404).
        self._store: dict[str, dict[str, Resource]] = {k: {} for k in DEFAULT_TYPES}
        self._snapshots: dict[str, _Snapshot] = {}
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._last_instant = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        loaded_at = self._next_instant()
        for resource in load_ndjson(resources):
            meta = resource.setdefault("meta", {})
            meta.setdefault("lastUpdated", loaded_at)
            meta.setdefault("versionId", "1")
            self._store.setdefault(resource["resourceType"], {})[str(resource["id"])] = resource

    # -- lifecycle ----------------------------------------------------------------------------
    def _make_server(self) -> ThreadingHTTPServer:
        httpd = _HTTPServer((self.host, 0), _Handler)
        httpd.owner = self
        return httpd

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return f"http://{self.host}:{self._httpd.server_address[1]}{BASE_PATH}"

    # -- test controls ------------------------------------------------------------------------
    def put(self, resource: Mapping[str, Any], *, last_updated: str | None = None) -> Resource:
        """Create or replace a resource; it gets a ``meta.lastUpdated`` newer than any before
        (or ``last_updated``) and the next ``versionId``. Returns the stored copy."""
        stored = copy.deepcopy(dict(resource))
        with self._lock:
            kind, key = stored["resourceType"], str(stored["id"])
            previous = self._store.get(kind, {}).get(key)
            version = int(previous["meta"].get("versionId", "1")) + 1 if previous else 1
            meta = stored.setdefault("meta", {})
            meta["lastUpdated"] = last_updated or self._next_instant()
            meta["versionId"] = str(version)
            self._store.setdefault(kind, {})[key] = stored
        return copy.deepcopy(stored)

    def delete(self, resource_type: str, resource_id: str) -> None:
        with self._lock:
            self._store.get(resource_type, {}).pop(resource_id, None)

    def get(self, resource_type: str, resource_id: str) -> Resource | None:
        with self._lock:
            found = self._store.get(resource_type, {}).get(resource_id)
            return copy.deepcopy(found) if found is not None else None

    def resources(self, resource_type: str) -> list[Resource]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._store.get(resource_type, {}).values()]

    def fail_next(self, status: int = 500, times: int = 1, *, delay: float = 0.0,
                  retry_after: int | None = None) -> None:
        """Answer the next ``times`` requests (any path) with ``status`` after ``delay`` s."""
        with self._lock:
            self._faults.append(_Fault(times, status, delay, retry_after))

    def delay_next(self, seconds: float, times: int = 1) -> None:
        """Hold the next ``times`` requests for ``seconds`` before answering them normally."""
        with self._lock:
            self._faults.append(_Fault(times, None, seconds, None))

    def requests_for(self, path: str) -> list[RecordedRequest]:
        """Recorded requests whose path (below the base, without query) is ``path``."""
        with self._lock:
            return [r for r in self.requests if urlsplit(r.path).path == path]

    # -- internals ----------------------------------------------------------------------------
    def _next_instant(self) -> str:
        with self._lock:
            now = datetime.now(UTC)
            step = self._last_instant + timedelta(milliseconds=1)
            self._last_instant = max(now.replace(microsecond=now.microsecond // 1000 * 1000),
                                     step)
            return _format_instant(self._last_instant)

    def _take_fault(self) -> _Fault | None:
        with self._lock:
            if not self._faults:
                return None
            fault = self._faults[0]
            fault.times -= 1
            if fault.times <= 0:
                self._faults.pop(0)
            return fault

    def _handle(self, request: BaseHTTPRequestHandler, body: bytes) -> None:
        split = urlsplit(request.path)
        below_base = split.path == BASE_PATH or split.path.startswith(BASE_PATH + "/")
        path = split.path[len(BASE_PATH):] if below_base else None
        with self._lock:
            self.requests.append(RecordedRequest(
                request.command,
                (split.path if path is None else path) + (f"?{split.query}" if split.query else ""),
                {name.lower(): value for name, value in request.headers.items()}))
        fault = self._take_fault()
        if fault is not None:
            self.stopping.wait(fault.delay)
        if fault is not None and fault.status is not None:
            status, payload = fault.status, _outcome("transient", "injected fault")
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
        else:
            try:
                status, payload, headers = self._route(request, path, split.query, body)
            except _SearchError as exc:
                status, payload, headers = exc.status, _outcome(exc.code, exc.message), {}
        with contextlib.suppress(ConnectionError, TimeoutError):  # the client gave up
            self._send(request, status, payload, headers)

    def _route(self, request: BaseHTTPRequestHandler, path: str | None, query: str,
               body: bytes) -> tuple[int, Resource, dict[str, str]]:
        if path is None:
            raise _SearchError(404, "not-found", f"the FHIR base is {BASE_PATH}")
        parts = [p for p in path.split("/") if p]
        if parts == ["metadata"] and request.command == "GET":
            return 200, self._capability(), {}
        if self.token is not None and (
            request.headers.get("Authorization", "") != f"Bearer {self.token}"
        ):
            return 401, _outcome("login", "a valid bearer token is required"), {
                "WWW-Authenticate": 'Bearer realm="fhir"'}
        params = parse_qsl(query, keep_blank_values=True)
        if request.command == "POST":
            if len(parts) != 2 or parts[1] != "_search":
                raise _SearchError(405, "not-supported", "only POST [type]/_search is supported")
            params += parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            parts = parts[:1]
        if not parts:
            token = dict(params).get("_getpages")
            if token is None:
                raise _SearchError(400, "not-supported", "system-level search is not supported")
            return 200, self._page(token, dict(params)), {}
        kind = parts[0]
        with self._lock:
            known = kind in self._store
        if not known:
            raise _SearchError(404, "not-found", f"resource type {kind!r} is not served")
        if len(parts) == 2:
            with self._lock:
                found = self._store[kind].get(parts[1])
            if found is None:
                raise _SearchError(404, "not-found", f"{kind}/{parts[1]} is not known")
            return 200, found, {}
        if len(parts) != 1:
            raise _SearchError(400, "not-supported", f"unsupported path {path!r}")
        return 200, self._search(kind, params), {}

    def _capability(self) -> Resource:
        with self._lock:
            kinds = sorted(self._store)
        return {
            "resourceType": "CapabilityStatement", "status": "active", "date": "2025-01-01",
            "kind": "instance", "fhirVersion": self.fhir_version, "format": ["json"],
            "software": {"name": "catalogue FHIR stand-in"},
            "implementation": {"description": "test server", "url": self.base_url},
            "rest": [{"mode": "server", "resource": [
                {"type": kind, "interaction": [{"code": "read"}, {"code": "search-type"}],
                 "searchInclude": [f"{kind}:{p}" for p in INCLUDES.get(kind, {})],
                 "searchParam": [{"name": "_lastUpdated", "type": "date"},
                                 {"name": "_id", "type": "token"}]}
                for kind in kinds]}],
        }

    def _search(self, kind: str, params: list[tuple[str, str]]) -> Resource:
        count = self.page_size
        includes: list[str] = []
        updated: list[tuple[str, tuple[datetime, datetime]]] = []
        ids: set[str] | None = None
        subjects: set[str] | None = None
        sort: str | None = None
        summary_count = False
        for name, value in params:
            if name == "_count":
                if not value.isdigit():
                    raise _SearchError(400, "invalid", f"_count={value!r} is not a number")
                count = min(int(value), MAX_COUNT)
                summary_count = summary_count or count == 0
            elif name == "_include":
                source, _, param = value.partition(":")
                element = INCLUDES.get(kind, {}).get(param.split(":")[0])
                if source != kind or element is None:
                    raise _SearchError(400, "not-supported", f"_include={value} is not supported")
                includes.append(element)
            elif name == "_lastUpdated":
                prefix = value[:2] if value[:2] in _PREFIXES else "eq"
                try:
                    updated.append((prefix, _instant_range(value[2:] if value[:2] in _PREFIXES
                                                           else value)))
                except ValueError as exc:
                    raise _SearchError(400, "invalid", str(exc)) from exc
            elif name == "_id":
                ids = set(value.split(","))
            elif name in ("subject", "patient"):
                subjects = {v if "/" in v else f"Patient/{v}" for v in value.split(",")}
            elif name == "_sort":
                if value.lstrip("-") not in ("_lastUpdated", "_id"):
                    raise _SearchError(400, "not-supported", f"_sort={value} is not supported")
                sort = value
            elif name == "_summary" and value == "count":
                summary_count = True
            elif name in ("_format", "_pretty", "_total"):
                continue
            else:
                raise _SearchError(400, "not-supported", f"search parameter {name!r} is unknown")
        with self._lock:
            matches = list(self._store.get(kind, {}).values())
        if ids is not None:
            matches = [r for r in matches if str(r["id"]) in ids]
        if subjects is not None:
            matches = [r for r in matches if (r.get("subject") or {}).get("reference") in subjects]
        for prefix, bounds in updated:
            matches = [r for r in matches if _date_matches(
                prefix, bounds, _instant_range(r["meta"]["lastUpdated"]))]
        if sort is not None:
            by_time = sort.lstrip("-") == "_lastUpdated"

            def key(resource: Resource) -> tuple[datetime, str]:
                moment = _instant_range(resource["meta"]["lastUpdated"])[0] if by_time else None
                return moment or datetime.min.replace(tzinfo=UTC), str(resource["id"])

            matches.sort(key=key, reverse=sort.startswith("-"))
        self_url = f"{self.base_url}/{kind}?{urlencode(params)}"
        if summary_count:
            return self._bundle(len(matches), [], [{"relation": "self", "url": self_url}])
        token = uuid.uuid4().hex
        snapshot = _Snapshot(kind, matches, tuple(dict.fromkeys(includes)), max(count, 1))
        with self._lock:
            self._snapshots[token] = snapshot
        return self._page_bundle(token, snapshot, 0, self_url)

    def _page(self, token: str, params: Mapping[str, str]) -> Resource:
        with self._lock:
            snapshot = self._snapshots.get(token)
        offset = params.get("_getpagesoffset", "0")
        if snapshot is None or not offset.isdigit():
            raise _SearchError(410, "not-found", "this paging link has expired or is invalid")
        self_url = f"{self.base_url}?{urlencode(params)}"
        return self._page_bundle(token, snapshot, int(offset), self_url)

    def _page_bundle(self, token: str, snapshot: _Snapshot, offset: int,
                     self_url: str) -> Resource:
        page = snapshot.matches[offset:offset + snapshot.count]
        entries = [self._entry(resource, "match") for resource in page]
        included: dict[str, Resource] = {}
        for resource in page:
            for element in snapshot.includes:
                reference = (resource.get(element) or {}).get("reference", "")
                target_type, _, target_id = str(reference).rpartition("/")
                target_type = target_type.rsplit("/", 1)[-1]  # absolute URL: keep the type
                key = f"{target_type}/{target_id}"
                if not target_id or key in included:
                    continue
                with self._lock:
                    target = self._store.get(target_type, {}).get(target_id)
                if target is not None:
                    included[key] = target
        entries += [self._entry(resource, "include") for resource in included.values()]
        links = [{"relation": "self", "url": self_url}]
        if offset + snapshot.count < len(snapshot.matches):
            links.append({"relation": "next", "url": f"{self.base_url}?" + urlencode({
                "_getpages": token, "_getpagesoffset": offset + snapshot.count,
                "_count": snapshot.count, "_bundletype": "searchset"})})
        return self._bundle(len(snapshot.matches), entries, links)

    def _entry(self, resource: Resource, mode: str) -> Resource:
        # No copy: stored resources are never changed in place (put() stores a new dict).
        return {"fullUrl": f"{self.base_url}/{resource['resourceType']}/{resource['id']}",
                "resource": resource, "search": {"mode": mode}}

    def _bundle(self, total: int, entries: list[Resource], links: list[dict[str, str]]
                ) -> Resource:
        bundle: Resource = {"resourceType": "Bundle", "id": uuid.uuid4().hex,
                            "meta": {"lastUpdated": _format_instant(datetime.now(UTC))},
                            "type": "searchset", "total": total, "link": links}
        if entries:
            bundle["entry"] = entries
        return bundle

    def _send(self, request: BaseHTTPRequestHandler, status: int, payload: Resource,
              headers: Mapping[str, str]) -> None:
        body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", FHIR_JSON)
        request.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            request.send_header(name, value)
        request.end_headers()
        request.wfile.write(body)


@contextlib.contextmanager
def serve_fhir(
    resources: str | Path | Iterable[Mapping[str, Any]],
    *,
    token: str | None = None,
    page_size: int = 50,
    fhir_version: str = "4.0.1",
) -> Iterator[str]:
    """Run a :class:`FHIRServer` for the ``with`` block; yields its base URL."""
    with FHIRServer(resources, token=token, page_size=page_size,
                    fhir_version=fhir_version) as server:
        yield server.base_url
