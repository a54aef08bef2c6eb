"""Load test: concurrent clients against a real ``catalogue serve`` on loopback.

A throw-away catalogue is filled with the synthetic federation (:mod:`catalogue.bench.synthetic`:
providers, published datasets, pseudonymised subjects with studies and diagnoses), its indices
are built, and ``catalogue serve`` is started as its own process on a free loopback port. N
client threads (keep-alive connections, one each) then mix, for a fixed duration:

* ``search``: ``GET /api/v1/datasets`` with text, facets, sort and paging;
* ``search_page``: the server-rendered web search page (``/search``) with the same parameters;
* ``dataset_page``: a dataset's web page (``/datasets/{id}``);
* ``dataset_api``: a dataset through the API (``/api/v1/datasets/{id}``);
* ``cohort_count``: ``POST /api/v1/cohorts/count``, typical 3-6-criteria questions grouped by
  dataset, each client as its own researcher (own token and budget ledger);
* ``dcat_page``: a page of ``/dcat/catalog`` in one of the four RDF formats.

Reported per operation: requests, throughput, p50/p95/max latency, errors (any status outside
200-399, or no answer; the first samples kept), with the p95 target of the issue that set one,
and the ratio of its p95 to the same operation's p95 unloaded (one client, measured in the same
run just before the load). Zero errors are expected.

The clients are threads of this process (``http.client``, one keep-alive connection each): their
CPU time is measured (``getrusage``) and reported per request and as a share of the machine, next
to the server process's, so that client overhead on a small machine is visible, not hidden.

Bench-only configuration, stated in the figures: the researcher's privacy budget is set so high
that the run cannot exhaust it (the run measures speed, not the budget).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import resource
import shutil
import signal
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from catalogue.bench.cohorts import questions
from catalogue.bench.search import percentile
from catalogue.bench.served import BENCH_BUDGET, serve_process, wait_ready
from catalogue.bench.synthetic import Spec, generate
from catalogue.config import load_config
from catalogue.model.identity import SYSTEM, Role, User
from catalogue.runtime import Runtime
from catalogue.testing.app_server import free_port

#: operation -> (share of requests, p95 target in ms or None, where the target comes from)
OPERATIONS: dict[str, tuple[float, float | None, str]] = {
    "search": (0.25, 25.0, "issue 5: search API p95 on tantivy"),
    "search_page": (0.15, 100.0, "issue 8: server render p95"),
    "dataset_page": (0.10, 100.0, "issue 8: server render p95"),
    "dataset_api": (0.10, None, "no issue sets one"),
    "cohort_count": (0.20, 50.0, "issue 6: cohort count API p95 on tantivy"),
    "dcat_page": (0.20, None, "issue 7 sets a rate target, not a latency"),
}
MAX_CLIENTS = 64
MAX_DURATION = 600.0
SEARCHES = (
    "q=lung", "q=breast", "q=prostate", "q=colorectal&sort=-modified", "q=glioblastoma",
    "modalities=CT", "modalities=MR&modalities=PT", "body_parts=CHEST", "q=lung&modalities=CT",
    "countries=ES", "countries=DE&access_rights=restricted", "sort=-number_of_individuals",
    "q=cancer&page=2", "sort=-modified&size=50", "sexes=female&q=breast",
    "individuals_min=100", "q=adenocarcinoma", "conditions=snomed:93880001",
)
FORMATS = ("turtle", "nt", "rdfxml", "jsonld")


@dataclass
class _Stats:
    ms: list[float] = field(default_factory=list)
    errors: int = 0
    samples: list[str] = field(default_factory=list)


class _Client:
    """One keep-alive connection; reconnects after a server-side close."""

    def __init__(self, port: int, token: str) -> None:
        self.port = port
        self.token = token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def request(self, method: str, path: str, body: Any = None,
                auth: bool = False) -> tuple[int, bytes]:
        status, data, _headers = self.exchange(method, path, body, auth)
        return status, data

    def exchange(self, method: str, path: str, body: Any = None,
                 auth: bool = False) -> tuple[int, bytes, http.client.HTTPMessage]:
        headers = {"Accept": "*/*"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=data, headers=headers)
                response = self.conn.getresponse()
                return response.status, response.read(), response.headers
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn.close()  # a closed keep-alive connection: once more on a new one
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.conn.close()


def prepare(folder: Path, spec: Spec, say: Callable[[str], None],
            researchers: int = 1) -> dict[str, Any]:
    """Fill the catalogue in ``folder``; return the researchers' tokens (one per client: many
    researchers, each with their own budget ledger, as on a portal), dataset ids and the
    preparation timings."""
    config = load_config(environ={}, data_dir=str(folder), env="development",
                         database_url=os.environ.get("CATALOGUE_DATABASE_URL", ""))
    rt = Runtime(config).start(background_indexer=False)
    try:
        started = time.perf_counter()
        with rt.database.transaction() as conn:
            report = generate(conn, spec)
        assert rt.indexer is not None
        say(f"generated {report.datasets:,} datasets, {report.subjects:,} subjects, "
            f"{report.studies:,} studies; indexing")
        indexed = time.perf_counter()
        rt.indexer.rebuild(index="datasets")
        rt.indexer.batch_size = 5_000
        rt.indexer.rebuild(index="subjects")
        index_s = time.perf_counter() - indexed
        tokens = []
        for number in range(researchers):
            name = f"load-researcher-{number}"
            rt.identities.create_user(SYSTEM, User("", name, Role.RESEARCHER))
            tokens.append(rt.identities.issue_token(SYSTEM, name).secret)
        with rt.database.transaction() as conn:
            ids = [str(r["id"]) for r in conn.execute(
                "SELECT id FROM datasets WHERE status = 'published' ORDER BY id")]
        return {"token": tokens[0], "tokens": tokens, "datasets": ids,
                "generate_s": round(report.seconds, 1), "index_s": round(index_s, 1),
                "prepare_s": round(time.perf_counter() - started, 1)}
    finally:
        rt.close()


def _dcat_pages(client: _Client, page_size: int) -> list[str]:
    """Walk the whole DCAT listing once (this also renders every dataset's stored fragments,
    as a harvester's first visit would); return every page's URL path."""
    paths = [f"/dcat/catalog?format=turtle&page_size={page_size}"]
    while True:
        status, _body, headers = client.exchange("GET", paths[-1])
        if status != 200:
            raise RuntimeError(f"DCAT warm-up page answered {status}")
        link = headers.get("Link", "")
        nxt = [p.split(";")[0].strip().strip("<>") for p in link.split(",")
               if 'rel="next"' in p]
        if not nxt:
            return paths
        parts = urllib.parse.urlsplit(nxt[0])
        paths.append(f"{parts.path}?{parts.query}")


def run(spec: Spec, clients: int = 8, duration: float = 60.0, workers: int = 8,
        seed: int = 0, page_size: int = 100, keep: bool = False,
        progress: Callable[[str], None] | None = None, processes: int | None = None,
        think_ms: float = 0.0) -> dict[str, Any]:
    """Prepare, serve, load; return the figures (``errors`` must be 0). ``processes``: of
    the server under test, one per CPU unless given."""
    processes = processes or os.cpu_count() or 1
    say = progress or (lambda _message: None)
    clients = max(1, min(clients, MAX_CLIENTS))
    duration = max(1.0, min(duration, MAX_DURATION))
    folder = Path(tempfile.mkdtemp(prefix="catalogue-bench-load-"))
    restore = _terminate_on_sigterm()
    try:
        prepared = prepare(folder, spec, say, researchers=clients)
        port = free_port()
        with serve_process(folder, port, workers, processes) as proc:
            wait_ready(port, proc, folder)
            warm = _Client(port, prepared["token"])
            say("warming up: walking the DCAT listing once (renders the export fragments)")
            started = time.perf_counter()
            pages = _dcat_pages(warm, page_size)
            warm_s = time.perf_counter() - started
            warm.close()
            asked = questions(200, seed)
            unloaded_s = min(10.0, max(2.0, duration / 6))
            say(f"baseline: one client for {unloaded_s:.0f} s")
            unloaded = _load(port, prepared, pages, asked, 1, unloaded_s, seed + 1)
            say(f"{clients} clients for {duration:.0f} s"
                + (f", {think_ms:.0f} ms mean think time" if think_ms else ""))
            server = psutil.Process(proc.pid)
            server_cpu = _tree_cpu(server)
            client_cpu = _cpu_seconds()
            figures = _load(port, prepared, pages, asked, clients, duration, seed, think_ms)
            client_cpu = _cpu_seconds() - client_cpu
            server_cpu = _tree_cpu(server) - server_cpu
            alive = proc.poll() is None
        cpus = os.cpu_count() or 1
        wall = figures["wall_s"] or 1.0
        for name, op in figures["operations"].items():
            base = unloaded["operations"][name]
            op["unloaded_p95_ms"] = base["p95_ms"]
            op["ratio_p95_vs_unloaded"] = (round(op["p95_ms"] / base["p95_ms"], 2)
                                           if op["p95_ms"] and base["p95_ms"] else None)
        figures.update({
            "clients": clients, "duration_s": duration, "server_workers": workers,
            "server_processes": processes, "think_ms": think_ms,
            "mode": "paced: each client waits an exponential think time (this mean) between "
                    "requests" if think_ms else "closed loop: each client sends its next "
                    "request as soon as the last is answered (saturation)",
            "datasets": spec.datasets, "subjects": spec.subjects, "studies_target": spec.studies,
            "prepare_s": prepared["prepare_s"], "index_s": prepared["index_s"],
            "dcat_warmup_s": round(warm_s, 1), "dcat_pages": len(pages),
            "unloaded": {"clients": 1, "duration_s": unloaded_s,
                         "requests": unloaded["requests"], "per_s": unloaded["per_s"],
                         "errors": unloaded["errors"]},
            "client_cpu_s": round(client_cpu, 1),
            "client_cpu_ms_per_request": round(client_cpu * 1000 / max(figures["requests"], 1),
                                               2),
            "client_cpu_share_of_machine": round(client_cpu / (wall * cpus), 3),
            "server_cpu_s": round(server_cpu, 1),
            "server_cpu_share_of_machine": round(server_cpu / (wall * cpus), 3),
            "server_alive_at_end": alive, "cpus": cpus,
            "load_average_end": [round(x, 2) for x in os.getloadavg()],
            "bench_configuration": "researcher and organisation privacy budgets set to "
                                   f"{BENCH_BUDGET} (speed is measured, not the budget)",
        })
        figures["errors"] += unloaded["errors"]
        for name, op in unloaded["operations"].items():
            figures["operations"][name]["errors"] += op["errors"]
            figures["operations"][name]["error_samples"] += op["error_samples"][:2]
        if not alive:
            figures["errors"] = figures.get("errors", 0) + 1
        return figures
    finally:
        _stop_postgres(folder)
        restore()
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)


def _tree_cpu(process: psutil.Process) -> float:
    """User and system CPU seconds of a process and its live children (the serve workers)."""
    total = 0.0
    for proc in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            total += sum(proc.cpu_times()[:2])
    return total


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _terminate_on_sigterm() -> Callable[[], None]:
    """SIGTERM unwinds this thread (``SystemExit``) so that the server and PostgreSQL are
    stopped; returns what restores the previous handler. The CLI installs its own first."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):
        return lambda: None

    def terminate(_signum: int, _frame: Any) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, terminate)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)
    return restore


def _stop_postgres(folder: Path) -> None:
    """The embedded PostgreSQL of ``folder``, if still running (a server that had to be
    killed leaves it behind): SIGINT (fast shutdown) to its postmaster, then wait."""
    pid_file = folder / "postgres" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        if "postgres" not in psutil.Process(pid).name():
            return  # a stale file, its pid reused
        os.kill(pid, signal.SIGINT)
    except (psutil.NoSuchProcess, ProcessLookupError):
        return
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and pid_file.exists():
        time.sleep(0.2)


def _load(port: int, prepared: dict[str, Any], pages: list[str],
          asked: list[dict[str, Any]], clients: int, duration: float,
          seed: int, think_ms: float = 0.0) -> dict[str, Any]:
    stats = {name: _Stats() for name in OPERATIONS}
    lock = threading.Lock()
    names = list(OPERATIONS)
    weights = [OPERATIONS[n][0] for n in names]
    datasets = prepared["datasets"]
    deadline = time.monotonic() + duration

    def one(client: _Client, rnd: random.Random, name: str) -> tuple[int, bytes]:
        if name == "search":
            return client.request("GET", f"/api/v1/datasets?{rnd.choice(SEARCHES)}")
        if name == "search_page":
            return client.request("GET", f"/search?{rnd.choice(SEARCHES)}")
        if name == "dataset_page":
            return client.request("GET", f"/datasets/{rnd.choice(datasets)}")
        if name == "dataset_api":
            return client.request("GET", f"/api/v1/datasets/{rnd.choice(datasets)}")
        if name == "cohort_count":
            return client.request("POST", "/api/v1/cohorts/count", rnd.choice(asked), auth=True)
        page = rnd.choice(pages).replace("format=turtle", f"format={rnd.choice(FORMATS)}")
        return client.request("GET", page)

    def worker(number: int) -> None:
        rnd = random.Random(seed * 1000 + number)  # noqa: S311 - a workload mix, not secrets
        tokens = prepared.get("tokens") or [prepared["token"]]
        client = _Client(port, tokens[number % len(tokens)])
        try:
            if think_ms:  # clients start spread over one think time, not all at once
                time.sleep(min(rnd.random() * think_ms / 1000, max(deadline - time.monotonic(),
                                                                   0)))
            while time.monotonic() < deadline:
                name = rnd.choices(names, weights)[0]
                started = time.perf_counter()
                try:
                    status, body = one(client, rnd, name)
                    problem = None if 200 <= status < 400 else f"{status}: {body[:200]!r}"
                except Exception as exc:  # no answer at all
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    s = stats[name]
                    s.ms.append(elapsed)
                    if problem is not None:
                        s.errors += 1
                        if len(s.samples) < 5:
                            s.samples.append(problem)
                if think_ms:
                    time.sleep(min(rnd.expovariate(1000 / think_ms),
                                   max(deadline - time.monotonic(), 0)))
        finally:
            client.close()

    threads = [threading.Thread(target=worker, args=(n,), daemon=True) for n in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(duration + 180)
    wall = time.perf_counter() - started
    operations: dict[str, Any] = {}
    for name, s in stats.items():
        _share, target, source = OPERATIONS[name]
        p95 = percentile(s.ms, 0.95) if s.ms else None
        operations[name] = {
            "requests": len(s.ms), "per_s": round(len(s.ms) / wall, 1),
            "p50_ms": round(percentile(s.ms, 0.5), 1) if s.ms else None,
            "p95_ms": round(p95, 1) if p95 is not None else None,
            "max_ms": round(max(s.ms), 1) if s.ms else None,
            "errors": s.errors, "error_samples": s.samples,
            "target_p95_ms": target, "target_source": source,
            "meets_target": None if target is None or p95 is None else p95 <= target,
        }
    total = sum(len(s.ms) for s in stats.values())
    return {"operations": operations, "requests": total, "per_s": round(total / wall, 1),
            "errors": sum(s.errors for s in stats.values()), "wall_s": round(wall, 1)}


def table(figures: dict[str, Any]) -> list[str]:
    lines = [f"{'operation':14} {'requests':>8} {'req/s':>7} {'p50 ms':>7} {'p95 ms':>7} "
             f"{'max ms':>8} {'errors':>6} {'unloaded':>8} {'×':>6} {'target':>7}  met"]
    for name, op in figures["operations"].items():
        target = "-" if op["target_p95_ms"] is None else f"{op['target_p95_ms']:.0f}"
        met = {None: "-", True: "yes", False: "no"}[op["meets_target"]]
        lines.append(f"{name:14} {op['requests']:>8} {op['per_s']:>7} {op['p50_ms']!s:>7} "
                     f"{op['p95_ms']!s:>7} {op['max_ms']!s:>8} {op['errors']:>6} "
                     f"{op.get('unloaded_p95_ms')!s:>8} {op.get('ratio_p95_vs_unloaded')!s:>6} "
                     f"{target:>7}  {met}")
    lines.append(f"{'all':14} {figures['requests']:>8} {figures['per_s']:>7} "
                 f"{'':>7} {'':>7} {'':>8} {figures['errors']:>6}")
    if "client_cpu_ms_per_request" in figures:
        lines.append(
            f"unloaded: p95 of one client alone, same run; ×: p95 under load / unloaded p95. "
            f"Client threads: {figures['client_cpu_ms_per_request']} ms CPU per request, "
            f"{figures['client_cpu_share_of_machine']:.0%} of the machine; server process "
            f"{figures['server_cpu_share_of_machine']:.0%} ({figures['cpus']} CPUs, load "
            f"average {figures['load_average_end']}). {figures['bench_configuration']}.")
    return lines
