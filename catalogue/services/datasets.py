"""Dataset descriptions: provider publishing (draft → published → withdrawn) and reading.

Visibility rule, applied everywhere: published datasets are public; drafts and withdrawn
datasets are visible only to the owning organisation's providers and to admins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from catalogue.caching import LRU
from catalogue.errors import Conflict, NotFound, ValidationError
from catalogue.model.dataset import Dataset, DatasetStatus
from catalogue.model.identity import Identity
from catalogue.search.base import SearchBackend
from catalogue.search.mappings import load_definition
from catalogue.search.query import SearchRequest, Terms
from catalogue.services.codes import unknown_code_warnings
from catalogue.services.permissions import require_authenticated, require_organisation
from catalogue.services.search import (
    SearchParams,
    access_label,
    build_request,
    facet_listing,
    highlights,
)
from catalogue.store.audit import audit, enqueue
from catalogue.store.datasets import DatasetRepository, content_hash
from catalogue.store.db import Database
from catalogue.store.identities import OrganisationRepository

FACETS = tuple(f.name for f in load_definition("datasets").facets)


def can_see(identity: Identity, ds: Dataset) -> bool:
    return (
        ds.status == DatasetStatus.PUBLISHED
        or identity.is_admin
        or identity.member_of(ds.organisation_id)
    )


@dataclass
class DatasetPage:
    total: int
    items: list[Dataset]
    facets: dict[str, list[tuple[str, int]]]
    listing: list[dict[str, Any]] = field(default_factory=list)  # facets as shown to users
    highlights: dict[str, dict[str, str]] = field(default_factory=dict)
    next_after: int | None = None  # cursor for the next page (sorted searches)
    sort: str = "relevance"
    organisations: dict[str, str] = field(default_factory=dict)  # id → name, for display
    #: dataset id → its row key (``DatasetRepository.row_keys``), for caches of renderings
    keys: dict[str, str] = field(default_factory=dict)


#: search hits kept per process (their datasets as read from PostgreSQL, by row key)
HIT_CACHE_SIZE = 4096


class DatasetService:
    def __init__(
        self,
        db: Database,
        search: SearchBackend | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.search_backend = search
        self.on_change = on_change or (lambda: None)
        self._hit_cache: LRU[str, tuple[str, Dataset]] = LRU(HIT_CACHE_SIZE)

    # -- writes -------------------------------------------------------------------------------
    def save(self, identity: Identity, ds: Dataset) -> tuple[Dataset, bool]:
        """Create or update (by organisation + identifier). Returns (dataset, created)."""
        require_organisation(identity, ds.organisation_id)
        if not ds.identifier or not ds.title:
            raise ValidationError("a dataset needs an identifier and a title")
        ds.validation = list(ds.validation or []) + [
            w for w in unknown_code_warnings(ds) if w not in (ds.validation or [])]
        with self.db.transaction() as conn:
            OrganisationRepository(conn).get(ds.organisation_id)
            repo = DatasetRepository(conn)
            existing = repo.find(ds.organisation_id, ds.identifier)
            if existing is None:
                saved, created = repo.insert(ds), True
            else:
                if existing.content_hash == content_hash(ds) and existing.status == ds.status:
                    return existing, False
                ds.id = existing.id
                saved, created = repo.update(ds), False
            assert saved.id is not None
            enqueue(conn, "dataset", [saved.id])
            audit(
                conn,
                identity,
                "dataset.create" if created else "dataset.update",
                "dataset",
                saved.id,
                {"organisation": saved.organisation_id, "status": saved.status.value},
            )
        self.on_change()
        return saved, created

    def update(self, identity: Identity, dataset_id: str, ds: Dataset) -> Dataset:
        """Replace the description of an existing dataset (the caller must own it)."""
        with self.db.transaction() as conn:
            current = DatasetRepository(conn).get(dataset_id)
        self._check_owner(identity, current)
        if ds.organisation_id != current.organisation_id:
            raise ValidationError("a dataset cannot move to another organisation")
        if ds.identifier != current.identifier:
            other = None
            with self.db.transaction() as conn:
                other = DatasetRepository(conn).find(current.organisation_id, ds.identifier)
            if other is not None:
                raise Conflict(f"identifier {ds.identifier!r} is used by another dataset")
        ds.id = current.id
        with self.db.transaction() as conn:
            saved = DatasetRepository(conn).update(ds)
            enqueue(conn, "dataset", [dataset_id])
            audit(
                conn,
                identity,
                "dataset.update",
                "dataset",
                dataset_id,
                {"organisation": saved.organisation_id, "status": saved.status.value},
            )
        self.on_change()
        return saved

    def set_status(self, identity: Identity, dataset_id: str, status: DatasetStatus) -> Dataset:
        with self.db.transaction() as conn:
            repo = DatasetRepository(conn)
            current = repo.get(dataset_id, for_update=True)
            self._check_owner(identity, current)
            violations = [v for v in current.validation if v.get("severity") == "violation"]
            if status == DatasetStatus.PUBLISHED and violations:
                raise ValidationError(
                    f"the description has {len(violations)} violation(s) and cannot be "
                    "published until they are fixed",
                    details=current.validation,
                )
            repo.set_status(dataset_id, status)
            enqueue(conn, "dataset", [dataset_id])
            audit(
                conn,
                identity,
                f"dataset.{status.value}",
                "dataset",
                dataset_id,
                {"organisation": current.organisation_id, "from": current.status.value},
            )
            updated = repo.get(dataset_id)
        self.on_change()
        return updated

    def _check_owner(self, identity: Identity, ds: Dataset) -> None:
        require_authenticated(identity)
        if not can_see(identity, ds):
            # a provider must not learn that another organisation's draft exists
            raise NotFound(f"dataset {ds.id!r} not found")
        require_organisation(identity, ds.organisation_id)

    def save_rdf(
        self,
        identity: Identity,
        organisation_id: str,
        content: bytes,
        content_type: str | None,
        status: DatasetStatus,
        dataset_id: str | None = None,
    ) -> tuple[Dataset, bool]:
        """Create or replace a dataset from an RDF description (any supported format).

        The document must describe exactly one ``dcat:Dataset``. It is validated against the
        SHACL shapes; the report is kept with the dataset. A description with violations can be
        saved as a draft but not published.
        """
        from catalogue.dcat.formats import parse_rdf
        from catalogue.dcat.profiles import get_profile
        from catalogue.dcat.validation import get_validator

        require_organisation(identity, organisation_id)
        profile = get_profile()
        graph = profile.canonicalise(parse_rdf(content, content_type=content_type))
        nodes = profile.dataset_nodes(graph)
        if len(nodes) != 1:
            raise ValidationError(
                f"the document must describe exactly one dcat:Dataset (found {len(nodes)})"
            )
        description = profile.description(graph, nodes[0])
        ds, problems = profile.parse_with_problems(description, nodes[0], organisation_id)
        issues = get_validator().validate_dataset(description, nodes[0])
        ds.validation = [{"severity": "warning", "path": None, "message": p} for p in problems]
        ds.validation += unknown_code_warnings(ds)
        ds.validation += [
            {"severity": i.severity, "path": i.path, "message": i.describe()} for i in issues
        ]
        ds.status = status
        violations = [v for v in ds.validation if v["severity"] == "violation"]
        if status == DatasetStatus.PUBLISHED and violations:
            raise ValidationError(
                f"the description has {len(violations)} violation(s) and cannot be published; "
                "save it as a draft or fix it",
                details=ds.validation,
            )
        if dataset_id is not None:
            current = self.get(identity, dataset_id)
            if current.organisation_id != organisation_id:
                raise ValidationError("a dataset cannot move to another organisation")
            return self.update(identity, dataset_id, ds), False
        return self.save(identity, ds)

    # -- reads --------------------------------------------------------------------------------
    def get(self, identity: Identity, dataset_id: str) -> Dataset:
        with self.db.transaction() as conn:
            ds = DatasetRepository(conn).get(dataset_id)
        if not can_see(identity, ds):
            raise NotFound(f"dataset {dataset_id!r} not found")
        return ds

    def visibility(self, identity: Identity) -> dict[str, Any]:
        if identity.is_admin:
            return {}
        org = identity.organisation_id
        if org is not None and identity.member_of(org):
            return {
                "any_of": (
                    (
                        Terms("status", ("published",)),
                        Terms("organisation_id", (org,)),
                    ),
                )
            }
        return {"filters": (Terms("status", ("published",)),)}

    def search_request(
        self,
        identity: Identity,
        text: str | None = None,
        filters: dict[str, list[str]] | None = None,
        size: int = 20,
        offset: int = 0,
        sort: str | None = None,
        params: SearchParams | None = None,
    ) -> SearchRequest:
        """The engine request a search builds for ``identity`` (also used by benchmarks to
        send the same query straight to the engine)."""
        return build_request(
            params or self._params(text, filters, size, offset, sort), self.visibility(identity))

    @staticmethod
    def _params(text: str | None, filters: dict[str, list[str]] | None, size: int, offset: int,
                sort: str | None) -> SearchParams:
        definition = load_definition("datasets")
        args: dict[str, list[str]] = {k: list(v) for k, v in (filters or {}).items() if v}
        params = SearchParams.from_args(args, definition)
        params.text, params.size, params.sort = (text or None), size, sort
        params.page = offset // size + 1
        return params

    def search(
        self,
        identity: Identity,
        text: str | None = None,
        filters: dict[str, list[str]] | None = None,
        size: int = 20,
        offset: int = 0,
        sort: str | None = None,
        params: SearchParams | None = None,
    ) -> DatasetPage:
        """Text, facet and range search over the datasets a caller may see."""
        if self.search_backend is None:
            raise NotFound("search is not configured")
        params = params or self._params(text, filters, size, offset, sort)
        definition = load_definition("datasets")
        request = self.search_request(identity, params=params)
        alias = self.search_backend.logical_name("datasets")
        result = self.search_backend.search(alias, request)
        with self.db.transaction() as conn:
            found, keys = self._hits(DatasetRepository(conn), result.ids)
            names = {o.id: o.name for o in OrganisationRepository(conn).list()}
        items = [found[i] for i in result.ids if i in found and can_see(identity, found[i])]
        labels = {"organisation_id": names,
                  "access_rights": {k: access_label(k) for k, _ in
                                    result.facets.get("access_rights", [])}}
        return DatasetPage(
            total=result.total,
            items=items,
            facets=result.facets,
            listing=facet_listing(result, params, definition, labels),
            highlights={d.id: highlights(d.title, d.description, params.text)
                        for d in items if d.id},
            next_after=(result.cursors[-1] if request.sort and result.cursors
                        and len(result.ids) == request.size else None),
            sort=request.sort or "relevance",
            organisations=names,
            keys=keys,
        )

    def _hits(self, repo: DatasetRepository,
              ids: list[str]) -> tuple[dict[str, Dataset], dict[str, str]]:
        """The datasets of a page of hits, and their row keys: those whose key is unchanged
        since this process last read them come from a bounded in-process cache (search hits
        repeat: the first pages of common searches), the others from PostgreSQL."""
        keys = repo.row_keys(ids)
        found: dict[str, Dataset] = {}
        missing: list[str] = []
        for dataset_id, key in keys.items():
            hit = self._hit_cache.get(dataset_id)
            if hit is not None and hit[0] == key:
                found[dataset_id] = hit[1]
            else:
                missing.append(dataset_id)
        for ds in repo.get_many(missing):
            assert ds.id is not None
            found[ds.id] = ds
            # a row written between the two reads is cached under its older key: the next
            # search misses and reads it again (never a stale hit)
            self._hit_cache.put(ds.id, (keys[ds.id], ds))
        return found, keys

    def list_for_organisation(
        self, identity: Identity, organisation_id: str, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[Dataset]]:
        require_organisation(identity, organisation_id)
        with self.db.transaction() as conn:
            return DatasetRepository(conn).list_page(
                organisation_id=organisation_id, limit=limit, offset=offset
            )
