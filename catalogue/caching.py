"""Caches: a small thread-safe LRU map for per-process caches (search hits and their JSON),
and a byte-bounded cache of whole response bodies on disk shared by serving processes."""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import io
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, BinaryIO, Generic, NamedTuple, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    """At most ``size`` entries; the least recently used goes first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)


#: buffers per ``writev`` call (Linux allows 1024)
_IOV_MAX = 1024


def _write_all(fd: int, parts: Sequence[bytes]) -> None:
    """Write every byte of ``parts`` to ``fd`` in order, in as few system calls as it takes."""
    pending = [memoryview(p) for p in parts if p]
    start = 0
    while start < len(pending):
        written = os.writev(fd, pending[start:start + _IOV_MAX])
        while written:  # skip what went out; a part written in half is cut
            if written >= len(pending[start]):
                written -= len(pending[start])
                start += 1
            else:
                pending[start] = pending[start][written:]
                written = 0


class CachedFile(NamedTuple):
    """A stored body (or a slice of one): ``size`` bytes at ``origin`` of an open file, and
    what was stored with it (``meta``)."""

    file: BinaryIO
    size: int
    origin: int
    meta: bytes = b""

    def read(self) -> bytes:
        self.file.seek(self.origin)
        return self.file.read(self.size)

    def slice(self, start: int, end: int) -> CachedFile:
        """Bytes ``start`` to ``end`` of the body (the same open file)."""
        return CachedFile(self.file, end - start, self.origin + start)

    def close(self) -> None:
        self.file.close()


class Joined(io.RawIOBase):
    """Byte strings and stored bodies one after the other, as one read-only, seekable stream
    of ``size`` bytes: what a server sends as a file (``wsgi.file_wrapper``) without joining
    them in memory. Closing it closes the stored bodies' files."""

    def __init__(self, segments: Sequence[bytes | CachedFile]) -> None:
        super().__init__()
        self.segments = list(segments)
        self._starts: list[int] = []  # where each segment starts in the stream
        size = 0
        for segment in self.segments:
            self._starts.append(size)
            size += len(segment) if isinstance(segment, bytes) else segment.size
        self.size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, size: int | None = -1) -> bytes:
        left = self.size - self._pos
        n = left if size is None or size < 0 else min(size, left)
        out = []
        while n > 0:
            # the segment holding the position (an empty one shares its start with the next)
            i = bisect.bisect_right(self._starts, self._pos) - 1
            segment, offset = self.segments[i], self._pos - self._starts[i]
            if isinstance(segment, bytes):
                chunk = segment[offset:offset + n]
            else:
                segment.file.seek(segment.origin + offset)
                chunk = segment.file.read(min(n, segment.size - offset))
            if not chunk:  # a stored body shorter than its header said: stop, never spin
                break
            out.append(chunk)
            self._pos += len(chunk)
            n -= len(chunk)
        return out[0] if len(out) == 1 else b"".join(out)

    def readinto(self, buffer: Any) -> int:
        out = self.read(len(buffer))
        buffer[:len(out)] = out
        return len(out)

    def close(self) -> None:
        if not self.closed:
            for segment in self.segments:
                if isinstance(segment, CachedFile):
                    segment.close()
        super().close()


class FileCache:
    """Whole response bodies on disk by key, within a byte budget; for bodies that are large,
    expensive to assemble and served again unchanged (DCAT export pages).

    Several processes may share the folder (``catalogue serve --processes N``). A body is
    written to a temporary file and renamed into place, so a reader sees all of it or nothing;
    each file starts with a header (magic, the key's digest, the lengths of the body and of
    the metadata stored after it) that is checked on opening, so a truncated or foreign file is
    a miss (and is removed). A reader's open file stays readable when the entry is evicted
    meanwhile (POSIX unlink semantics).

    Eviction: about every ``budget / 8`` bytes written, the folder is listed and the entries
    least recently used (by modification time, which a hit refreshes at most every
    ``TOUCH_EVERY`` seconds) are removed until the folder holds at most ``LOW_WATER`` of the
    budget. Failures to read or write are misses, logged once per process: the cache can only
    make an answer faster, never make it fail.
    """

    MAGIC = b"CICBODY2"
    #: magic, sha256 of the key, body length, metadata length (little endian)
    HEADER = len(MAGIC) + 32 + 8 + 4
    SUFFIX = ".body"
    TOUCH_EVERY = 30.0
    LOW_WATER = 0.75
    #: temporary files older than this are leftovers of a process that died while writing
    STALE_TEMP = 3600.0

    def __init__(self, folder: Path | str, budget: int) -> None:
        self.folder = Path(folder)
        self.budget = budget
        self._written = budget  # the first write lists the folder (other processes' entries)
        self._lock = threading.Lock()
        self._warned = False
        #: what this process did (``/metrics``): lookups that found a body or not, bodies
        #: stored or not (refused, or larger than the budget), entries evicted and their bytes
        self.counts = {"hit": 0, "miss": 0, "stored": 0, "failed": 0, "evicted": 0,
                       "evicted_bytes": 0}

    def _count(self, what: str, n: int = 1) -> None:
        with self._lock:
            self.counts[what] += n

    def _located(self, key: str) -> tuple[bytes, Path]:
        """The key's digest (in the header) and the file it names."""
        digest = hashlib.sha256(key.encode()).digest()
        return digest, self.folder / (digest.hex() + self.SUFFIX)

    def _path(self, key: str) -> Path:
        return self._located(key)[1]

    def _header(self, digest: bytes, size: int, meta: int = 0) -> bytes:
        return self.MAGIC + digest + size.to_bytes(8, "little") + meta.to_bytes(4, "little")

    @classmethod
    def body_of(cls, stored: bytes) -> bytes:
        """The body in a stored file's bytes (for tools and tests)."""
        size = int.from_bytes(stored[cls.HEADER - 12:cls.HEADER - 4], "little")
        return stored[cls.HEADER:cls.HEADER + size]

    def open(self, key: str) -> CachedFile | None:
        """The body stored under ``key``, or None."""
        digest, path = self._located(key)
        try:
            file = open(path, "rb")
        except OSError:
            self._count("miss")
            return None
        try:
            head = file.read(self.HEADER)
            stat = os.fstat(file.fileno())
            whole = len(head) == self.HEADER
            size = int.from_bytes(head[-12:-4], "little") if whole else -1
            meta = int.from_bytes(head[-4:], "little") if whole else 0
            if head[:-12] != self.MAGIC + digest or \
                    stat.st_size != self.HEADER + size + meta:
                file.close()
                self._discard(path)
                self._count("miss")
                return None
            extra = os.pread(file.fileno(), meta, self.HEADER + size) if meta else b""
            if time.time() - stat.st_mtime > self.TOUCH_EVERY:
                os.utime(file.fileno())
            self._count("hit")
            return CachedFile(file, size, self.HEADER, extra)
        except OSError as exc:
            file.close()
            self._warn("read", exc)
            self._count("miss")
            return None

    def put(self, key: str, body: bytes) -> None:
        """Store ``body`` under ``key`` (replacing what was there)."""
        stored = self.store(key, [body])
        if stored is not None:
            stored.close()

    def store(self, key: str, parts: Sequence[bytes], meta: bytes = b"") -> CachedFile | None:
        """Store the concatenation of ``parts`` under ``key`` (with ``meta``, handed back by
        :meth:`open`) and return it open: a body assembled from many parts is written once, by
        the kernel (``writev``), and sent from the file, never joined in memory. None when it
        cannot be stored (too large for the budget, or the disk refuses): the caller keeps its
        parts."""
        size = sum(len(part) for part in parts)
        if size + len(meta) + self.HEADER > self.budget:
            self._count("failed")
            return None
        digest, path = self._located(key)
        temp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            file = open(temp, "w+b", buffering=0)
        except OSError as exc:
            self._warn("write", exc)
            self._count("failed")
            return None
        try:
            _write_all(file.fileno(), [self._header(digest, size, len(meta)), *parts, meta])
            os.replace(temp, path)
        except OSError as exc:
            file.close()
            self._discard(temp)
            self._warn("write", exc)
            self._count("failed")
            return None
        with self._lock:
            self.counts["stored"] += 1
            self._written += size + len(meta) + self.HEADER
            due = self._written >= self.budget / 8
            if due:
                self._written = 0
        if due:
            self.evict()
        return CachedFile(file, size, self.HEADER, meta)

    def evict(self) -> None:
        """Bring the folder under ``LOW_WATER`` of the budget when it is over the budget,
        least recently used first."""
        entries = []
        now = time.time()
        try:
            with os.scandir(self.folder) as listing:
                for entry in listing:
                    try:
                        stat = entry.stat()
                    except OSError:
                        continue  # removed meanwhile
                    if entry.name.endswith(".tmp"):
                        if now - stat.st_mtime > self.STALE_TEMP:
                            self._discard(Path(entry.path))
                    elif entry.name.endswith(self.SUFFIX):
                        entries.append((stat.st_mtime, stat.st_size, entry.path))
        except OSError as exc:
            self._warn("list", exc)
            return
        total = sum(size for _, size, _ in entries)
        if total <= self.budget:
            return
        entries.sort()
        evicted = freed = 0
        for _, size, path in entries:
            if total <= self.budget * self.LOW_WATER:
                break
            self._discard(Path(path))
            total -= size
            evicted += 1
            freed += size
        with self._lock:
            self.counts["evicted"] += evicted
            self.counts["evicted_bytes"] += freed

    def clear(self) -> None:
        """Remove every entry (benchmarks measure the first walk after a change this way)."""
        with contextlib.suppress(OSError), os.scandir(self.folder) as listing:
            for entry in listing:
                if entry.name.endswith((self.SUFFIX, ".tmp")):
                    self._discard(Path(entry.path))

    @staticmethod
    def _discard(path: Path) -> None:
        with contextlib.suppress(OSError):
            path.unlink()

    def _warn(self, what: str, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("response cache in %s: cannot %s (%s); serving without it where it "
                        "fails", self.folder, what, exc.strerror or exc)
