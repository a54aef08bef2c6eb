"""The on-disk body cache behind DCAT export pages: what a reader can trust (whole bodies, the
right key), how it stays within its budget, and that it never makes an answer fail."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from catalogue.caching import FileCache


def stored(cache: FileCache) -> list[Path]:
    return sorted(cache.folder.glob("*" + FileCache.SUFFIX))


def test_a_body_is_read_back_whole_from_its_first_byte(tmp_path: Path) -> None:
    cache = FileCache(tmp_path / "pages", 10 * 2**20)
    assert cache.open("a") is None  # nothing yet (the folder does not even exist)
    body = os.urandom(300_000)
    cache.put("a", body)
    hit = cache.open("a")
    assert hit is not None and hit.size == len(body)
    assert hit.file.tell() == FileCache.HEADER  # positioned at the body: served from here
    assert hit.read() == body
    hit.close()
    assert cache.open("b") is None  # another key
    cache.put("a", b"replaced")
    hit = cache.open("a")
    assert hit is not None and hit.read() == b"replaced"
    hit.close()
    assert len(stored(cache)) == 1 and not list(cache.folder.glob("*.tmp"))


def test_a_truncated_or_foreign_file_is_a_miss_and_is_removed(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 10 * 2**20)
    cache.put("a", b"x" * 1000)
    cache.put("b", b"y" * 1000)
    path_a, path_b = (cache._path(k) for k in ("a", "b"))
    with open(path_a, "r+b") as f:  # a crash mid-write on a filesystem without rename order
        f.truncate(FileCache.HEADER + 10)
    assert cache.open("a") is None and not path_a.exists()
    os.replace(path_b, path_a)  # b's body under a's name: its header names another key
    assert cache.open("a") is None and not path_a.exists()
    path_a.write_bytes(b"short")  # not even a header
    assert cache.open("a") is None and not path_a.exists()


def test_the_least_recently_used_bodies_go_first_when_over_budget(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 10 * (1000 + FileCache.HEADER))
    cache.TOUCH_EVERY = 0.0  # type: ignore[misc]
    now = time.time()
    for n in range(10):
        cache.put(str(n), bytes(1000))
        os.utime(cache._path(str(n)), (now - 100 + n, now - 100 + n))  # 0 is the oldest
    hit = cache.open("0")  # used again: now the most recent
    assert hit is not None
    hit.close()
    kept_open = cache.open("1")  # a reader in the middle of sending it...
    assert kept_open is not None
    os.utime(cache._path("1"), (now - 99, now - 99))  # ...of a body last used long ago
    cache.put("10", bytes(1000))  # over budget: down to three quarters of it
    cache.evict()
    left = {p.name for p in stored(cache)}
    assert len(left) == 7
    assert cache._path("0").name in left and cache._path("10").name in left
    for gone in ("1", "2", "3", "4"):
        assert cache._path(gone).name not in left
    assert kept_open.read() == bytes(1000)  # evicted while open: still readable
    kept_open.close()
    assert cache.counts["evicted"] == 4
    assert cache.counts["evicted_bytes"] == 4 * (1000 + FileCache.HEADER)
    assert cache.counts["hit"] == 2 and cache.counts["stored"] == 11


def test_evicting_is_triggered_by_writing_and_clears_stale_temporary_files(
        tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 8 * (1000 + FileCache.HEADER))
    stale = tmp_path / f"x{FileCache.SUFFIX}.1.2.tmp"
    fresh = tmp_path / f"y{FileCache.SUFFIX}.1.3.tmp"  # another process writing right now
    stale.write_bytes(b"left by a process that died")
    fresh.write_bytes(b"being written")
    old = time.time() - 2 * FileCache.STALE_TEMP
    os.utime(stale, (old, old))
    for n in range(20):  # never more than the budget on disk, without an explicit evict()
        cache.put(str(n), bytes(1000))
        total = sum(p.stat().st_size for p in stored(cache))
        assert total <= cache.budget + (1000 + FileCache.HEADER)
    assert not stale.exists() and fresh.exists()
    assert cache.open("19") is not None  # the newest is kept


def test_a_body_larger_than_the_budget_is_not_stored(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 1000)
    cache.put("a", bytes(2000))
    assert cache.open("a") is None and stored(cache) == []


def test_a_folder_it_cannot_write_is_a_warning_once_never_an_error(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")  # the cache folder's path is a file: nothing can be made under it
    cache = FileCache(blocked / "pages", 2**20)
    with caplog.at_level(logging.WARNING, logger="catalogue.caching"):
        cache.put("a", b"body")
        cache.put("b", b"body")
        assert cache.open("a") is None
        cache.evict()
        cache.clear()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot write" in warnings[0].getMessage()
    assert "body" not in warnings[0].getMessage()  # no payload in the log


def test_clear_removes_every_body(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 2**20)
    for n in range(3):
        cache.put(str(n), b"body")
    (tmp_path / "unrelated.txt").write_text("not ours")
    cache.clear()
    assert stored(cache) == [] and (tmp_path / "unrelated.txt").exists()


def test_a_body_stored_from_many_parts_is_their_concatenation_open_at_its_start(
        tmp_path: Path) -> None:
    """More parts than one ``writev`` takes, of every size (empty ones too): the stored body is
    exactly their concatenation, and it is handed back open for sending."""
    cache = FileCache(tmp_path, 64 * 2**20)
    parts = [os.urandom(n % 977) for n in range(3000)] + [os.urandom(3 * 2**20)]
    body = b"".join(parts)
    stored = cache.store("page", parts)
    assert stored is not None and stored.size == len(body)
    assert stored.read() == body
    stored.close()
    again = cache.open("page")
    assert again is not None and again.read() == body
    again.close()


def test_a_body_that_cannot_be_stored_is_left_to_the_caller(tmp_path: Path) -> None:
    cache = FileCache(tmp_path, 1000)
    assert cache.store("big", [bytes(600), bytes(600)]) is None  # over the budget
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    assert FileCache(blocked, 2**20).store("a", [b"x"]) is None  # the disk refuses
    assert stored(cache) == [] and not list(tmp_path.glob("*.tmp"))


def test_byte_strings_and_stored_bodies_read_as_one_stream(tmp_path: Path) -> None:
    """What a page is sent as: its opening, stored runs (and runs assembled afresh), its
    closing. Read whole, in pieces that cross the boundaries, after seeks, and the way
    waitress's ``wsgi.file_wrapper`` reads it (size from seeking to the end; peek a chunk,
    seek back, skip what went out)."""
    from waitress.buffers import ReadOnlyFileBasedBuffer

    from catalogue.caching import Joined

    cache = FileCache(tmp_path, 10 * 2**20)
    first, second = os.urandom(200_000), os.urandom(7_000)
    cache.put("one", first)
    cache.put("two", second)
    opening, middle, closing = os.urandom(5000), os.urandom(300), b"]\n"

    def joined() -> Joined:
        one, two = cache.open("one"), cache.open("two")
        assert one is not None and two is not None
        return Joined([opening, one, b"", middle, two, closing])

    whole = opening + first + middle + second + closing
    stream = joined()
    assert stream.size == len(whole) and stream.read() == whole and stream.read() == b""
    stream.close()
    assert stream.closed
    assert all(s.file.closed for s in stream.segments if not isinstance(s, bytes))

    stream = joined()
    pieces = []
    while piece := stream.read(3001):  # 3001 divides none of the lengths: pieces span two
        pieces.append(piece)
    assert b"".join(pieces) == whole
    for at in (4990, 204_990, 205_300, 100):  # back and forth across the boundaries
        stream.seek(at)
        assert stream.read(20) == whole[at:at + 20]
    stream.seek(-10, os.SEEK_END)
    assert stream.read() == whole[-10:]
    stream.close()

    buffer = ReadOnlyFileBasedBuffer(joined(), 2**20)
    assert buffer.prepare(len(whole)) == len(whole)
    sent = bytearray()
    while len(buffer):
        chunk = buffer.get(16384)
        sent += chunk[:10000]  # the socket took part of it
        buffer.skip(min(10000, len(chunk)), True)
    assert bytes(sent) == whole
    buffer.close()


def test_metadata_is_stored_with_a_body_and_slices_read_their_own_bytes(
        tmp_path: Path) -> None:
    from catalogue.caching import Joined

    cache = FileCache(tmp_path, 10 * 2**20)
    body, meta = os.urandom(50_000), b"offsets:" + os.urandom(64)
    made = cache.store("run", [body[:10], body[10:]], meta)
    assert made is not None and made.meta == meta and made.read() == body
    made.close()
    hit = cache.open("run")
    assert hit is not None and hit.meta == meta and hit.size == len(body)
    head, tail = hit.slice(0, 123), hit.slice(40_000, 50_000)
    assert head.read() == body[:123] and tail.read() == body[40_000:]
    stream = Joined([b"<", tail, b"|", head, b">"])  # two slices of one open file
    assert stream.read() == b"<" + body[40_000:] + b"|" + body[:123] + b">"
    stream.close()
    assert hit.file.closed
    path = cache._path("run")
    raw = path.read_bytes()
    assert FileCache.body_of(raw) == body and raw.endswith(meta)
    path.write_bytes(raw[:-1])  # the metadata cut short: a miss
    assert cache.open("run") is None and not path.exists()
