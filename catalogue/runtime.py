"""Everything a running catalogue holds: store, search backend, indexer, services.

Built from a :class:`Config` by :func:`Runtime.start`; no import-time globals. The CLI and
``create_app`` both use it, so a command and the server see the same wiring.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
from pathlib import Path
from typing import Any

from catalogue.caching import FileCache
from catalogue.config import Config, check_secret_strength
from catalogue.dcat.export import CatalogFacts
from catalogue.errors import CatalogueError, ConfigError
from catalogue.privacy.disclosure import DisclosurePolicy
from catalogue.search.base import SearchBackend
from catalogue.search.indexer import Indexer, outbox_state
from catalogue.search.registry import create_backend
from catalogue.services.cohorts import CohortService
from catalogue.services.datasets import DatasetService
from catalogue.services.export import ExportService
from catalogue.services.harvest import HarvestService
from catalogue.services.identities import IdentityService
from catalogue.store import migrations
from catalogue.store.db import Database
from catalogue.store.embedded import EmbeddedPostgres

log = logging.getLogger(__name__)


def resolve_secret(config: Config) -> str:
    """The configured secret, or (outside production) a random one kept in the data folder."""
    if config.secret_key:
        if config.production:
            check_secret_strength(config.secret_key)
        return config.secret_key
    if config.production:
        check_secret_strength("")
    path = Path(config.data_dir) / "secret.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class Runtime:
    """Owns the long-lived parts of one catalogue process."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.secret_key = resolve_secret(config)
        self.embedded: EmbeddedPostgres | None = None
        self.db: Database | None = None
        self.search: SearchBackend | None = None
        self.indexer: Indexer | None = None
        self._datasets: DatasetService | None = None
        self._identities: IdentityService | None = None
        self._harvest: HarvestService | None = None
        self._cohorts: CohortService | None = None
        self._export: ExportService | None = None
        self._scheduler_stop: threading.Event | None = None
        #: "primary" (indexes; the only process unless `serve --processes`) or "worker"
        self.role = "primary"

    @property
    def harvest(self) -> HarvestService:
        if self._harvest is None:
            raise RuntimeError("runtime not started")
        return self._harvest

    @property
    def cohorts(self) -> CohortService:
        if self._cohorts is None:
            raise RuntimeError("runtime not started")
        return self._cohorts

    @property
    def export(self) -> ExportService:
        if self._export is None:
            raise RuntimeError("runtime not started")
        return self._export

    @property
    def datasets(self) -> DatasetService:
        if self._datasets is None:
            raise RuntimeError("runtime not started")
        return self._datasets

    @property
    def identities(self) -> IdentityService:
        if self._identities is None:
            raise RuntimeError("runtime not started")
        return self._identities

    @property
    def database(self) -> Database:
        if self.db is None:
            raise RuntimeError("runtime not started")
        return self.db

    def start(
        self, migrate: bool = True, with_search: bool = True, background_indexer: bool = False,
        indexer: bool = True,
    ) -> Runtime:
        """Open the store (and the embedded PostgreSQL), the search backend and the services.

        ``indexer=False`` is a serve worker (``catalogue.serving``): it reads the indices the
        primary process writes, and never creates, rebuilds or writes them."""
        config = self.config
        self.role = "primary" if indexer else "worker"
        url = config.database_url
        if not url:
            self.embedded = EmbeddedPostgres(Path(config.data_dir))
            url = self.embedded.start()
        self.db = Database(
            url,
            min_size=config.database_pool_min,
            max_size=config.database_pool_max,
            timeout=config.database_timeout,
        )
        try:
            self.db.open(wait=False)
            if migrate:
                migrations.upgrade(self.db)
            else:
                todo = migrations.pending(self.db)
                if todo:
                    raise ConfigError(
                        f"the database schema is {len(todo)} migration(s) behind; run "
                        "`catalogue db upgrade`"
                    )
        except CatalogueError:
            self.close()
            raise
        if with_search:
            self.search = create_backend(config)
            if indexer:
                self.indexer = Indexer(self.db, self.search, batch_size=config.indexer_batch)
                try:
                    self.indexer.ensure_indices()
                except CatalogueError as exc:
                    log.warning("search index not ready: %s", exc.message)
                if background_indexer:
                    self.indexer.start(config.indexer_interval)
        self._identities = IdentityService(self.db, token_ttl_days=config.token_ttl_days)
        self._harvest = HarvestService(
            self.db, on_change=self.indexer.wake if self.indexer else None,
            secret=self.secret_key, aggregate_floor=self.config.aggregate_floor,
        )
        self._cohorts = CohortService(self.db, self.search, self.secret_key,
                                      DisclosurePolicy.from_config(config))
        self._datasets = DatasetService(
            self.db, self.search, on_change=self.indexer.wake if self.indexer else None
        )
        base = config.public_base_url
        pages = FileCache(Path(config.data_dir) / "export-pages",
                          config.export_page_cache_mb * 2**20) \
            if config.export_page_cache_mb > 0 else None
        self._export = ExportService(self.db, base, CatalogFacts(
            f"{base}/dcat/catalog", config.catalog_title, config.catalog_description,
            config.catalog_publisher, base + "/", config.catalog_admin_email), pages=pages)
        return self

    def settle(self) -> None:
        """Before serving: load what every request reads (vocabularies, the cohort context),
        then move everything alive to the interpreter's permanent generation.

        CPython's full garbage collection walks every tracked object; with the startup heap
        (the web framework, vocabularies, schemas) one pass took about 60 ms here, and it ran
        in the middle of whichever request crossed the threshold (cohort counts allocate
        thousands of cells, so they crossed it most). Frozen objects are never walked again.
        Only for serving processes: frozen objects are never collected."""
        import gc

        from catalogue.ontology import VOCABULARIES, get_vocabulary

        for name in VOCABULARIES:
            get_vocabulary(name)
        if self._cohorts is not None and self.search is not None:
            try:
                self._cohorts.context()
            except CatalogueError as exc:  # the store is down: the first request reads it
                log.warning("cohort context not read at startup: %s", exc.message)
        gc.collect()
        gc.freeze()

    def start_scheduler(self) -> None:
        """Run due harvest sources in a background thread (one process should do this)."""
        from catalogue.model.identity import SYSTEM

        stop = threading.Event()
        self._scheduler_stop = stop

        def loop() -> None:
            while not stop.wait(self.config.harvest_check_interval):
                try:
                    self.harvest.mark_stale_runs()
                    for report in self.harvest.run_due(SYSTEM):
                        log.info(
                            "scheduled harvest %s of source %s: %s",
                            report.run_id,
                            report.source_id,
                            report.status,
                        )
                except CatalogueError as exc:
                    log.warning("harvest scheduler: %s", exc.message)
                except Exception:
                    log.exception("harvest scheduler failed")

        threading.Thread(target=loop, name="catalogue-harvest-scheduler", daemon=True).start()

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        """(ready, details) for ``/readyz``: store and search reachable, indexer lag."""
        details: dict[str, Any] = {"process": {"role": self.role, "pid": os.getpid()}}
        ready = True
        try:
            assert self.db is not None
            details["store"] = {"ok": True, **self.db.ping(), "embedded": self.embedded is not None}
        except CatalogueError as exc:
            ready = False
            details["store"] = {"ok": False, "error": exc.message}
        if self.search is not None:
            try:
                details["search"] = {"ok": True, **self.search.ping()}
            except CatalogueError as exc:
                ready = False
                details["search"] = {"ok": False, "error": exc.message}
            else:
                if not self._indices_ready():
                    # reachable, but the indices are not there yet (created in the background)
                    ready = False
                    details["search"] = {**details["search"], "ok": False,
                                         "error": "search indices not created yet"}
        if self.search is not None and details["store"]["ok"]:
            try:
                details["indexer"] = (  # a serve worker: the primary process indexes
                    self.indexer.lag() if self.indexer is not None
                    else {**outbox_state(self.database), "process": "primary"})
            except CatalogueError as exc:
                details["indexer"] = {"error": exc.message}
        return ready, details

    def _indices_ready(self) -> bool:
        if self.indexer is not None:
            return self.indexer.indices_ready
        assert self.search is not None  # a worker: the primary creates them
        return all(self.search.current_index(self.search.logical_name(name)) is not None
                   for name in ("datasets", "subjects"))

    def close(self) -> None:
        if self._scheduler_stop is not None:
            self._scheduler_stop.set()
        if self.indexer is not None:
            self.indexer.stop()
        if self._cohorts is not None:
            self._cohorts.close()
        if self.search is not None:
            self.search.close()
        if self.db is not None:
            self.db.close()
        if self.embedded is not None:
            self.embedded.stop()
