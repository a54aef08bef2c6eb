"""A real Orthanc PACS with its DICOMweb plugin, started by tests as a child process.

Uses the Debian packages ``orthanc`` and ``orthanc-dicomweb`` (``scripts/test.sh`` installs them):
the ``Orthanc`` binary runs directly (never the system service) with a JSON configuration written
to a temporary folder, its SQLite index, storage and log in that folder, HTTP and DICOM on free
ports (HTTP answers loopback clients only; DICOM only C-ECHO), no authentication unless
``credentials`` are given, and the DICOMweb plugin at ``/dicom-web/``. The process dies with the
thread that started it (``PR_SET_PDEATHSIG``), so even a killed test run leaves no Orthanc behind;
start it from the main thread (pytest fixtures do) or from a thread that outlives it.

Example::

    with run_orthanc(tmp_path) as orthanc:
        for data in dicom_files:
            orthanc.upload(data)
        requests.get(f"{orthanc.dicomweb_url}/studies", params={"limit": 10})

What QIDO-RS of Orthanc 1.10.1 + DICOMweb plugin 1.7 (Debian 12) returns, as checked by
``tests/integration/test_orthanc_fixture.py``:

* a JSON array of DICOM JSON objects (``application/dicom+json``, also for ``Accept:
  application/json``), keys are upper-case tags, ``{"00201206": {"vr": "IS", "Value": [4]}}``,
  person names ``{"vr": "PN", "Value": [{"Alphabetic": "Family^Given"}]}``; an empty attribute is
  ``{"vr": "PN"}`` (no Value); an attribute missing from the files is left out. ``00080005`` says
  ``ISO_IR 100`` whatever the files say; the text is UTF-8.
* ``/studies`` by default: 00080005, StudyDate 00080020, StudyTime 00080030, AccessionNumber
  00080050, ModalitiesInStudy 00080061, ReferringPhysicianName 00080090, RetrieveURL 00081190,
  PatientName 00100010, PatientID 00100020, PatientBirthDate 00100030, PatientSex 00100040,
  StudyInstanceUID 0020000D, StudyID 00200010, NumberOfStudyRelatedSeries 00201206,
  NumberOfStudyRelatedInstances 00201208. ``/studies/{uid}/series`` and ``/series``: the same
  minus 00080061/00201206/00201208, plus Modality 00080060, SeriesDescription 0008103E,
  SeriesInstanceUID 0020000E, SeriesNumber 00200011, NumberOfSeriesRelatedInstances 00201209.
* ``includefield=all`` adds nothing. Named fields are added (keyword or tag), as repeated
  parameters (``includefield=BodyPartExamined&includefield=Manufacturer``) or with a literal
  comma; a percent-encoded comma (``%2C``, what ``requests``/``urlencode`` send for
  ``"A,B"``) makes Orthanc silently ignore the whole value. ``BodyPartExamined``,
  ``Manufacturer``, ``ManufacturerModelName`` are available at series level. A series-level
  attribute asked at study level is read from one instance (one BodyPartExamined even when the
  series differ), so body parts and manufacturers need series queries.
* paging: ``offset`` and ``limit`` work; ``limit=0`` or none means all; an offset past the end
  gives ``[]`` (200); no total count, no ``Link`` header. Order is Orthanc's internal resource
  id (a hash), stable between calls but not by date: a study added during a paged walk can land
  on an earlier page. Unknown study: ``[]`` (200), not 404.

Standard library only.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any

__all__ = [
    "DICOMWEB_PLUGIN_CANDIDATES",
    "Orthanc",
    "OrthancError",
    "find_dicomweb_plugin",
    "find_orthanc_binary",
    "run_orthanc",
]

INSTALL_HINT = (
    "install the Debian packages: apt-get install -y orthanc orthanc-dicomweb "
    "(scripts/test.sh does this)"
)
BINARY_ENV = "CATALOGUE_ORTHANC_BINARY"
PLUGIN_ENV = "CATALOGUE_ORTHANC_DICOMWEB_PLUGIN"
DICOMWEB_PLUGIN_CANDIDATES = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",  # Debian/Ubuntu (symlink)
    "/usr/lib/orthanc/libOrthancDicomWeb.so",
    "/usr/local/share/orthanc/plugins/libOrthancDicomWeb.so",
)
_PR_SET_PDEATHSIG = 1


class OrthancError(RuntimeError):
    """Orthanc is missing, did not start, or refused a request."""


def find_orthanc_binary() -> str:
    """Path of the ``Orthanc`` executable (``$CATALOGUE_ORTHANC_BINARY``, PATH, /usr/sbin)."""
    given = os.environ.get(BINARY_ENV)
    if given:
        if not os.access(given, os.X_OK):
            raise OrthancError(f"{BINARY_ENV}={given} is not an executable")
        return given
    found = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise OrthancError(
            f"the Orthanc binary was not found on PATH or in /usr/sbin: {INSTALL_HINT}"
        )
    return found


def find_dicomweb_plugin() -> str:
    """Path of the DICOMweb plugin shared library (``$CATALOGUE_ORTHANC_DICOMWEB_PLUGIN`` or
    where the Debian package puts it)."""
    given = os.environ.get(PLUGIN_ENV)
    candidates = [given] if given else list(DICOMWEB_PLUGIN_CANDIDATES)
    if not given:
        candidates += sorted(
            str(p) for p in Path("/usr/lib/orthanc").glob("libOrthancDicomWeb.so*")
        )
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    looked = ", ".join(c for c in candidates if c)
    raise OrthancError(
        f"the Orthanc DICOMweb plugin was not found (looked at {looked}): {INSTALL_HINT}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _death_signal() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the kernel SIGKILL the child when the thread that started
    it exits (Linux), so a killed test run leaves no Orthanc. libc is loaded here, in the
    parent: the child only makes one system call between fork and exec."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:  # pragma: no cover - runs in the child
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return preexec


class Orthanc:
    """A running Orthanc child process (see :func:`run_orthanc`)."""

    def __init__(
        self,
        folder: Path,
        *,
        dicomweb: bool = True,
        credentials: tuple[str, str] | None = None,
        aet: str = "CATALOGUE_TEST",
        config: dict[str, Any] | None = None,
    ) -> None:
        self.folder = Path(folder)
        self.dicomweb = dicomweb
        self.credentials = credentials
        self.aet = aet
        self.extra_config = dict(config or {})
        self.http_port = 0
        self.dicom_port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self.version = ""
        self.startup_seconds = 0.0
        self._log: IO[bytes] | None = None

    # -- addresses ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Root of the Orthanc REST API, without a trailing slash."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """Root of the DICOMweb API (QIDO-RS, WADO-RS, STOW-RS), without a trailing slash."""
        return f"{self.url}/dicom-web"

    @property
    def config_path(self) -> Path:
        return self.folder / "orthanc.json"

    @property
    def log_path(self) -> Path:
        return self.folder / "orthanc.log"

    @property
    def auth_header(self) -> dict[str, str]:
        if not self.credentials:
            return {}
        token = base64.b64encode(":".join(self.credentials).encode()).decode()
        return {"Authorization": f"Basic {token}"}

    # -- life cycle --------------------------------------------------------------------------

    def configuration(self) -> dict[str, Any]:
        """The configuration written to ``orthanc.json``."""
        config: dict[str, Any] = {
            "Name": "catalogue-test",
            "StorageDirectory": str(self.folder / "storage"),
            "IndexDirectory": str(self.folder / "index"),
            "StorageCompression": False,
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "HttpDescribeErrors": True,
            "HttpCompressionEnabled": False,
            "HttpThreadsCount": 16,
            "KeepAlive": True,
            "OrthancExplorerEnabled": False,
            "WebDavEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            # Orthanc 1.10 listens on every interface and has no bind-address option: HTTP
            # refuses non-loopback clients (RemoteAccessAllowed), DICOM accepts only C-ECHO
            # (no registered modalities, nothing allowed to unknown ones).
            "DicomAlwaysAllowEcho": True,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowFind": False,
            "DicomAlwaysAllowFindWorklist": False,
            "DicomAlwaysAllowGet": False,
            "DicomAlwaysAllowMove": False,
            "DicomCheckModalityHost": True,
            "DicomModalities": {},
            "OrthancPeers": {},
            "SaveJobs": False,
            "ConcurrentJobs": 2,
            "StableAge": 2,
            "LimitFindResults": 0,
            "LimitFindInstances": 0,
            "AuthenticationEnabled": bool(self.credentials),
            "RegisteredUsers": dict([self.credentials]) if self.credentials else {},
            "Plugins": [],
        }
        if self.dicomweb:
            config["Plugins"] = [find_dicomweb_plugin()]
            config["DicomWeb"] = {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": True,
                "WadoRoot": "/wado",
                "Ssl": False,
            }
        config.update(self.extra_config)
        return config

    def start(self, timeout: float = 60.0, attempts: int = 3) -> Orthanc:
        """Start Orthanc and wait until ``/system`` answers (retrying on a port race)."""
        if self.process is not None:
            raise OrthancError("Orthanc is already running")
        binary = find_orthanc_binary()
        self.folder.mkdir(parents=True, exist_ok=True)
        last_error: OrthancError | None = None
        for _ in range(attempts):
            self.http_port, self.dicom_port = _free_port(), _free_port()
            while self.dicom_port == self.http_port:
                self.dicom_port = _free_port()
            self.config_path.write_text(json.dumps(self.configuration(), indent=2))
            began = time.monotonic()
            self._log = open(self.log_path, "ab")  # closed in stop()
            self.process = subprocess.Popen(
                [binary, "--no-jobs", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=self.folder,
                preexec_fn=_death_signal(),
            )
            try:
                self._wait_ready(began + timeout)
            except OrthancError as exc:
                self.stop()
                last_error = exc
                if "already in use" in exc.args[0] or "Address already" in exc.args[0]:
                    continue
                raise
            self.startup_seconds = time.monotonic() - began
            return self
        assert last_error is not None
        raise last_error

    def _wait_ready(self, deadline: float) -> None:
        assert self.process is not None
        while True:
            code = self.process.poll()
            if code is not None:
                raise OrthancError(
                    f"Orthanc exited with status {code} while starting:\n{self.log_tail()}"
                )
            try:
                system = self.get_json("/system", timeout=2)
            except (OSError, OrthancError):
                system = None
            if system is not None:
                self.version = str(system.get("Version", ""))
                if self.dicomweb and not self._plugin_loaded():
                    raise OrthancError(f"the DICOMweb plugin did not load:\n{self.log_tail()}")
                return
            if time.monotonic() > deadline:
                raise OrthancError(f"Orthanc did not answer /system in time:\n{self.log_tail()}")
            time.sleep(0.05)

    def _plugin_loaded(self) -> bool:
        plugins = self.get_json("/plugins")
        return isinstance(plugins, list) and "dicom-web" in plugins

    def stop(self, *, graceful: bool = False) -> None:
        """Kill Orthanc (SIGKILL: instant, and the SQLite index survives it) and wait for it.
        ``graceful`` sends SIGTERM first (Orthanc then takes about 2.5 s to shut down), with
        SIGKILL after 10 s."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            if graceful:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGCONT)  # in case it was suspended
                process.terminate()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(10)
            if process.poll() is None:
                process.kill()
            process.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def suspend(self) -> None:
        """Freeze the process (SIGSTOP): connections are accepted by the kernel but never
        answered, as with a hung PACS. :meth:`resume` continues it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Orthanc:
        return self if self.process is not None else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- REST --------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        *,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> bytes:
        """One request to the Orthanc REST API; raises :class:`OrthancError` on HTTP errors."""
        headers = {"Accept": "application/json", **self.auth_header}
        if body is not None:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(  # noqa: S310 - loopback http URL built here
            self.url + path, data=body, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                return bytes(response.read())
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise OrthancError(f"{method} {path}: HTTP {exc.code}: {detail}") from exc

    def get_json(self, path: str, *, timeout: float = 30.0) -> Any:
        return json.loads(self.request("GET", path, timeout=timeout))

    def upload(self, data: bytes) -> dict[str, Any]:
        """Store one DICOM file (``POST /instances``); returns Orthanc's answer, e.g.
        ``{"ID": ..., "ParentStudy": ..., "Status": "Success" | "AlreadyStored"}``."""
        answer = json.loads(
            self.request("POST", "/instances", data, content_type="application/dicom")
        )
        if not isinstance(answer, dict) or answer.get("Status") not in {"Success", "AlreadyStored"}:
            raise OrthancError(f"upload refused: {answer}")
        return answer

    def upload_all(self, files: Iterable[bytes]) -> int:
        """Upload every file; returns how many were stored."""
        count = 0
        for data in files:
            self.upload(data)
            count += 1
        return count

    def lookup(self, uid: str) -> list[dict[str, Any]]:
        """Orthanc resources whose DICOM identifier is ``uid`` (``POST /tools/lookup``)."""
        answer = json.loads(
            self.request("POST", "/tools/lookup", uid.encode(), content_type="text/plain")
        )
        return list(answer)

    def delete_study(self, study_uid: str) -> bool:
        """Delete the study with this StudyInstanceUID; False when Orthanc does not hold it."""
        found = [item for item in self.lookup(study_uid) if item.get("Type") == "Study"]
        for item in found:
            self.request("DELETE", f"/studies/{item['ID']}")
        return bool(found)

    def study_uids(self) -> list[str]:
        """StudyInstanceUIDs of every stored study."""
        studies = self.get_json("/studies?expand")
        return sorted(s["MainDicomTags"]["StudyInstanceUID"] for s in studies)

    def statistics(self) -> dict[str, Any]:
        """``GET /statistics``: CountPatients, CountStudies, CountSeries, CountInstances..."""
        return dict(self.get_json("/statistics"))


@contextlib.contextmanager
def run_orthanc(
    tmp_dir: str | os.PathLike[str],
    *,
    dicomweb: bool = True,
    credentials: tuple[str, str] | None = None,
    timeout: float = 60.0,
    config: dict[str, Any] | None = None,
) -> Iterator[Orthanc]:
    """Start Orthanc with its configuration, index, storage and log in ``tmp_dir``; stop it on
    exit. ``credentials`` (user, password) switch on HTTP basic authentication; ``config``
    overrides configuration keys."""
    orthanc = Orthanc(Path(tmp_dir), dicomweb=dicomweb, credentials=credentials, config=config)
    orthanc.start(timeout=timeout)
    try:
        yield orthanc
    finally:
        orthanc.stop()
