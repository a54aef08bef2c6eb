"""PostgreSQL stops and starts again under load; the catalogue is not restarted.

Real parts: a private embedded PostgreSQL (never the session's server), the real app served
over HTTP by waitress, real client threads. While PostgreSQL is down every request gets an
answer within the configured connection timeout: 503 with the JSON error for what needs the
database (searches fetch their hits from it), never a 500 and never a hung connection. When
PostgreSQL is back the pool reconnects by itself; a write made afterwards is stored, and
nothing committed before the outage is lost (compared with the ids written).

Operations under load: searches, a dataset page, ``/readyz`` and an admin write
(``POST /api/v1/datasets``) in a loop. Every status seen is recorded; only 200 (201 for the
write) and 503 are allowed. Every write answered 201 is in PostgreSQL afterwards, and the search
index (drained) counts exactly what PostgreSQL holds.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from catalogue.model.identity import SYSTEM, Organisation, Role, User
from catalogue.runtime import Runtime
from catalogue.store.embedded import EmbeddedPostgres
from catalogue.testing.app_server import serve
from tests.conftest import make_config
from tests.integration.test_search_resilience import call, wait_until

TIMEOUT = 1.0  # CATALOGUE_DATABASE_TIMEOUT for this test


def _dataset(i: int) -> dict[str, Any]:
    return {"identifier": f"restart-{i}", "organisation_id": "org-f", "status": "published",
            "title": {"en": f"Lung cohort {i}"}, "modalities": ["CT"]}


@pytest.mark.slow
def test_postgresql_restart_under_load_answers_503_then_recovers(tmp_path: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="catf-", dir="/tmp"))  # a short socket path
    server = EmbeddedPostgres(folder)
    url = server.start()
    rt = Runtime(make_config(tmp_path, url, database_timeout=TIMEOUT)).start()
    try:
        rt.identities.create_organisation(SYSTEM, Organisation("org-f", "Faults", "ES"))
        rt.identities.create_user(SYSTEM, User("", "admin-f", Role.ADMIN))
        token = rt.identities.issue_token(SYSTEM, "admin-f").secret
        with serve(rt, threads=8) as base:
            written = []
            for i in range(10):
                reply = call(base, "POST", "/api/v1/datasets", _dataset(i), token)
                assert reply.status == 201, reply.raw
                written.append(reply.body["id"])
            assert rt.indexer is not None and rt.indexer.drain() == 10

            seen: list[tuple[float, str, int, float]] = []  # (at, operation, status, seconds)
            failures: list[str] = []
            stop = threading.Event()
            operations = {
                "search": "/api/v1/datasets?q=lung",
                "dataset": f"/api/v1/datasets/{written[0]}",
                "readyz": "/readyz",
            }

            def client(name: str, path: str) -> None:
                while not stop.is_set():
                    started = time.monotonic()
                    try:
                        reply = call(base, "GET", path, timeout=30)
                    except Exception as exc:  # no answer at all: a failure of the test
                        failures.append(f"{name}: {type(exc).__name__}: {exc}")
                        continue
                    elapsed = time.monotonic() - started
                    seen.append((started, name, reply.status, elapsed))
                    if reply.status == 503:
                        error = (reply.body or {}).get("error", {})
                        if error.get("status") != 503 and name != "readyz":
                            failures.append(f"{name}: 503 without the JSON error: {reply.raw!r}")
                    time.sleep(0.02)

            acknowledged: list[str] = []  # ids of writes answered 201
            attempted: list[str] = []     # identifiers of every write sent

            def writer() -> None:
                n = 1000
                while not stop.is_set():
                    n += 1
                    attempted.append(f"restart-{n}")
                    started = time.monotonic()
                    try:
                        reply = call(base, "POST", "/api/v1/datasets", _dataset(n), token,
                                     timeout=30)
                    except Exception as exc:
                        failures.append(f"write: {type(exc).__name__}: {exc}")
                        continue
                    seen.append((started, "write", reply.status, time.monotonic() - started))
                    if reply.status == 201:
                        acknowledged.append(reply.body["id"])
                    elif reply.status == 503:
                        if (reply.body or {}).get("error", {}).get("status") != 503:
                            failures.append(f"write: 503 without the JSON error: {reply.raw!r}")
                    else:
                        failures.append(f"write: HTTP {reply.status}: {reply.raw[:200]!r}")
                    time.sleep(0.1)

            threads = [threading.Thread(target=client, args=item, daemon=True)
                       for item in operations.items()]
            threads.append(threading.Thread(target=writer, daemon=True))
            for t in threads:
                t.start()
            time.sleep(1.0)
            stopped_at = time.monotonic()
            server.stop()
            assert not server.running()
            time.sleep(4.0)
            # a write during the outage is refused as unavailable (and so not half-done)
            refused = call(base, "POST", "/api/v1/datasets", _dataset(100), token)
            assert refused.status == 503 and refused.body["error"]["code"] == "store_unavailable"
            restarted_at = time.monotonic()
            server.start()

            def healthy() -> bool:
                recent = [s for at, _n, s, _e in seen if at > time.monotonic() - 0.5]
                return bool(recent) and all(s in (200, 201) for s in recent)

            wait_until(healthy, 30, "every operation answers 200 again")
            recovered_at = time.monotonic()
            time.sleep(1.0)
            stop.set()
            for t in threads:
                t.join(40)

            assert not failures, failures[:5]
            statuses = Counter((name, status) for _at, name, status, _e in seen)
            assert set(s for _n, s in statuses) <= {200, 201, 503}, statuses
            assert not any(s == 201 for n, s in statuses if n != "write"), statuses
            outage = [(n, s, e) for at, n, s, e in seen if stopped_at + 0.2 < at < restarted_at]
            for name in [*operations, "write"]:  # every operation saw the outage, as 503
                assert any(n == name and s == 503 for n, s, _e in outage), (name, statuses)
            # no request hung: each answered within the connection timeout plus a margin
            slowest = max(e for _at, _n, _s, e in seen)
            assert slowest < TIMEOUT + 4.0, slowest
            assert recovered_at - restarted_at < 30

            # after recovery: writes are stored again, and nothing written before was lost
            reply = call(base, "POST", "/api/v1/datasets", _dataset(11), token)
            assert reply.status == 201, reply.raw
            written.append(reply.body["id"])
            with rt.database.transaction() as conn:
                rows = conn.execute("SELECT id::text AS id, identifier FROM datasets").fetchall()
            stored = {r["id"] for r in rows}
            # every acknowledged write is kept (nothing lost), each identifier once
            assert set(written) | set(acknowledged) <= stored
            assert len(rows) == len({r["identifier"] for r in rows})
            # nothing is stored that was not sent, and the write refused during the outage
            # is not stored half-done
            assert {r["identifier"] for r in rows} <= {
                *(f"restart-{i}" for i in range(12)), *attempted}
            assert "restart-100" not in {r["identifier"] for r in rows}
            assert len(acknowledged) >= 5, len(acknowledged)
            assert call(base, "GET", "/readyz").status == 200
            rt.indexer.drain()
            total = call(base, "GET", "/api/v1/datasets?q=lung").body["total"]
            assert total == len(rows), (total, len(rows))
    finally:
        rt.close()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
