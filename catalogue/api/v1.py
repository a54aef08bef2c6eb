"""JSON API v1: organisations, users, tokens, datasets. Views parse, call one service, dump."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import orjson
from flask import Blueprint, Response, current_app, jsonify, request

from catalogue.api.routing import identity, int_arg, json_body, op, runtime
from catalogue.caching import LRU
from catalogue.errors import ValidationError
from catalogue.model.dataset import Dataset, DatasetStatus, Distribution
from catalogue.model.identity import Organisation, Role, User
from catalogue.ontology import VOCABULARIES, get_vocabulary
from catalogue.schemas import (
    DatasetPageSchema,
    DatasetSchema,
    IssuedTokenSchema,
    OrganisationSchema,
    TokenRequestSchema,
    TokenSchema,
    UserSchema,
    load,
)
from catalogue.search.mappings import load_definition
from catalogue.services.datasets import FACETS
from catalogue.services.search import DATE_RANGES, RANGES, SearchParams

bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")

_org_schema = OrganisationSchema()
_user_schema = UserSchema()
_token_schema = TokenSchema()
_issued_schema = IssuedTokenSchema()
_dataset_schema = DatasetSchema()


def _created(body: Any) -> Response:
    response = jsonify(body)
    response.status_code = 201
    return response


# -- organisations ----------------------------------------------------------------------------
@op(
    bp,
    "GET",
    "/organisations",
    "List organisations (data providers)",
    tag="identities",
    response_schema=OrganisationSchema(many=True),
)
def list_organisations() -> Response:
    orgs = runtime().identities.list_organisations()
    return jsonify(_org_schema.dump(orgs, many=True))


@op(
    bp,
    "POST",
    "/organisations",
    "Create an organisation",
    tag="identities",
    auth="admin",
    request_schema=OrganisationSchema,
    response_schema=OrganisationSchema,
    status=201,
    errors=(400, 401, 403, 409),
)
def create_organisation() -> Response:
    data = load(_org_schema, json_body())
    org = runtime().identities.create_organisation(identity(), Organisation(**data))
    return _created(_org_schema.dump(org))


@op(
    bp,
    "GET",
    "/organisations/{org_id}",
    "Get an organisation",
    tag="identities",
    response_schema=OrganisationSchema,
    errors=(404,),
)
def get_organisation(org_id: str) -> Response:
    org = runtime().identities.get_organisation(org_id)
    return jsonify(_org_schema.dump(org))


# -- users ------------------------------------------------------------------------------------
@op(
    bp,
    "GET",
    "/users",
    "List users",
    tag="identities",
    auth="admin",
    response_schema=UserSchema(many=True),
    errors=(401, 403),
)
def list_users() -> Response:
    users = runtime().identities.list_users(identity())
    return jsonify(_user_schema.dump(users, many=True))


@op(
    bp,
    "POST",
    "/users",
    "Create a user",
    tag="identities",
    auth="admin",
    request_schema=UserSchema,
    response_schema=UserSchema,
    status=201,
    errors=(400, 401, 403, 409),
)
def create_user() -> Response:
    data = load(_user_schema, json_body())
    user = User(
        id="",
        username=data["username"],
        role=Role(data["role"]),
        organisation_id=data["organisation_id"],
        display_name=data["display_name"],
        email=data["email"],
    )
    created = runtime().identities.create_user(identity(), user)
    return _created(_user_schema.dump(created))


@op(
    bp,
    "GET",
    "/me",
    "The calling user",
    tag="identities",
    auth="token",
    response_schema=UserSchema,
    errors=(401,),
)
def me() -> Response:
    ident = identity()
    user = runtime().identities.get_user(ident, ident.username or "")
    return jsonify(_user_schema.dump(user))


# -- tokens -----------------------------------------------------------------------------------
@op(
    bp,
    "GET",
    "/tokens",
    "List API tokens (yours; admins: all or ?username=)",
    tag="identities",
    auth="token",
    response_schema=TokenSchema(many=True),
    query=(("username", "string", "Admins: only this user's tokens"),),
    errors=(401, 403),
)
def list_tokens() -> Response:
    tokens = runtime().identities.list_tokens(identity(), request.args.get("username") or None)
    return jsonify(_token_schema.dump(tokens, many=True))


@op(
    bp,
    "POST",
    "/tokens",
    "Create an API token (the secret is shown once)",
    tag="identities",
    auth="token",
    request_schema=TokenRequestSchema,
    response_schema=IssuedTokenSchema,
    status=201,
    errors=(400, 401, 403),
)
def create_token() -> Response:
    data = load(TokenRequestSchema(), json_body())
    ident = identity()
    issued = runtime().identities.issue_token(
        ident, data["username"] or ident.username or "", data["name"], data["ttl_days"]
    )
    body = {**_token_schema.dump(issued.token), "token": issued.secret}
    return _created(body)


@op(
    bp,
    "DELETE",
    "/tokens/{token_id}",
    "Revoke an API token",
    tag="identities",
    auth="token",
    response_schema=TokenSchema,
    errors=(401, 404),
)
def revoke_token(token_id: str) -> Response:
    token = runtime().identities.revoke_token(identity(), token_id)
    return jsonify(_token_schema.dump(token))


# -- datasets ---------------------------------------------------------------------------------
def _dataset_from(data: dict[str, Any]) -> Dataset:
    dists = [Distribution(**d) for d in data.pop("distributions", [])]
    data["status"] = DatasetStatus(data.get("status", "draft"))
    return Dataset(distributions=dists, **data)


def _saved(ds: Dataset, created: bool) -> Response:
    response = jsonify(dump_dataset(ds))
    response.status_code = 201 if created else 200
    return response


def dump_dataset(ds: Dataset) -> dict[str, Any]:
    body: dict[str, Any] = _dataset_schema.dump(ds)
    body["distributions"] = [asdict(d) for d in ds.distributions]
    body["validation"] = ds.validation
    body["fields"] = ds.fields
    return body


#: dumped search hits per app, by (dataset id, row key): a hit's JSON is a function of its rows
#: (``DatasetRepository.row_keys`` changes with any write to them)
HIT_DUMPS = 4096


def _dumped(ds: Dataset, key: str | None) -> dict[str, Any]:
    """``dump_dataset(ds)``, reused while the row key is unchanged (shared: callers copy
    before adding to it)."""
    if key is None or ds.id is None:
        return dump_dataset(ds)
    cache: LRU[tuple[str, str], dict[str, Any]] | None = current_app.extensions.get(
        "catalogue.hit_dumps")
    if cache is None:
        cache = current_app.extensions.setdefault("catalogue.hit_dumps", LRU(HIT_DUMPS))
    body = cache.get((ds.id, key))
    if body is None:
        body = dump_dataset(ds)
        cache.put((ds.id, key), body)
    return body


@op(
    bp,
    "GET",
    "/datasets",
    "Search datasets: text, facets (OR within, AND across; hierarchical with descendants), "
    "ranges, sort and deep paging",
    tag="datasets",
    response_schema=DatasetPageSchema,
    query=(
        ("q", "string", "Free text: every word must match (accents folded; stemmed per "
         "language; concept labels in every language and codes included)"),
        ("page", "integer", "Page number, from 1 (offset paging up to 10,000 hits)"),
        ("size", "integer", "Hits per page (1-100)"),
        ("sort", "string", "relevance (default with q), -modified (default without), modified, "
         "-number_of_individuals, number_of_individuals, -number_of_studies, number_of_studies"),
        ("after", "integer", "Deep paging: next_after of the previous page (sorted searches)"),
        ("descendants", "boolean", "Coded facets also match descendant concepts (default true)"),
        ("lang", "string", "Language of vocabulary labels (default en)"),
        *[(f, "string", f"Filter on {f}: repeat for OR; vocabulary ids, codes, IRIs or labels")
          for f in FACETS],
        *[(r, "string", "Range bound") for r in (*RANGES, *DATE_RANGES)],
    ),
    errors=(400, 503),
)
def search_datasets() -> Response:
    definition = load_definition("datasets")
    params = SearchParams.from_args(request.args.to_dict(flat=False), definition)
    result = runtime().datasets.search(identity(), params=params)
    hits = []
    for ds in result.items:
        body = _dumped(ds, result.keys.get(ds.id or ""))
        hits.append({**body, "highlights": result.highlights.get(ds.id or "", {})})
    return fast_json(
        {
            "total": result.total,
            "page": params.page,
            "size": params.size,
            "sort": result.sort,
            "next_after": result.next_after,
            "hits": hits,
            "facets": result.listing,
        }
    )


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def fast_json(payload: Any) -> Response:
    """``jsonify(payload)`` written by orjson (a page of hits with its facets in about a third of
    the time). Dates and dataclasses go through Flask's own conversion, so the values are the
    same; anything orjson refuses (integers beyond 64 bits) goes through ``jsonify``."""
    try:
        body = orjson.dumps(payload, default=current_app.json.default,  # type: ignore[attr-defined]
                            option=_ORJSON_OPTIONS)
    except TypeError:
        return jsonify(payload)
    return current_app.response_class(body + b"\n", mimetype="application/json")


# -- vocabularies -----------------------------------------------------------------------------
@op(bp, "GET", "/vocabularies", "The controlled vocabularies (conditions, modalities, body "
    "parts)", tag="vocabularies")
def list_vocabularies() -> Response:
    out = []
    for name in VOCABULARIES:
        vocab = get_vocabulary(name)
        out.append({"name": name, "title": vocab.title, "concepts": len(vocab.concepts())})
    return jsonify({"vocabularies": out})


@op(
    bp,
    "GET",
    "/vocabularies/{name}",
    "A vocabulary as a tree of concepts, or autocomplete suggestions with ?q=",
    tag="vocabularies",
    query=(
        ("q", "string", "Autocomplete: words (prefixes) of labels in any language, or a code"),
        ("lang", "string", "Language of labels (default en)"),
        ("limit", "integer", "Number of suggestions (1-50, default 10)"),
    ),
    errors=(400, 404),
)
def vocabulary(name: str) -> Response:
    vocab = get_vocabulary(name)
    lang = request.args.get("lang") or "en"
    q = (request.args.get("q") or "").strip()
    if q:
        limit = int_arg("limit", 10, 1, 50)
        return jsonify({"name": name, "q": q, "suggestions": vocab.suggest(q, limit, lang)})
    return jsonify({"name": name, "title": vocab.title, "tree": vocab.tree(lang)})


RDF_TYPES = (
    "text/turtle",
    "application/ld+json",
    "application/rdf+xml",
    "application/n-triples",
    "application/trig",
    "application/x-turtle",
    "application/xml",
    "text/n3",
)


def _rdf_request() -> bool:
    return request.mimetype in RDF_TYPES


def _save_rdf(dataset_id: str | None = None) -> Response:
    ident = identity()
    raw_status = request.args.get("status", "draft")
    if raw_status not in ("draft", "published"):
        raise ValidationError("status must be 'draft' or 'published'")
    status = DatasetStatus(raw_status)
    if dataset_id is not None:
        org = runtime().datasets.get(ident, dataset_id).organisation_id
    else:
        org = request.args.get("organisation_id") or ident.organisation_id or ""
    ds, created = runtime().datasets.save_rdf(
        ident, org, request.get_data(), request.mimetype, status, dataset_id
    )
    return _saved(ds, created)


@op(
    bp,
    "POST",
    "/datasets",
    "Create or update a dataset description: JSON, or RDF (Turtle, JSON-LD, RDF/XML, "
    "N-Triples, TriG) with ?organisation_id= and ?status=draft|published",
    tag="datasets",
    auth="token",
    request_schema=DatasetSchema,
    response_schema=DatasetSchema,
    status=201,
    query=(
        ("organisation_id", "string", "RDF uploads: owning organisation"),
        ("status", "string", "RDF uploads: draft (default) or published"),
    ),
    errors=(400, 401, 403, 415),
)
def create_dataset() -> Response:
    if _rdf_request():
        return _save_rdf()
    data = load(_dataset_schema, json_body())
    ds, created = runtime().datasets.save(identity(), _dataset_from(data))
    return _saved(ds, created)


@op(
    bp,
    "GET",
    "/datasets/{dataset_id}",
    "Get a dataset description",
    tag="datasets",
    response_schema=DatasetSchema,
    errors=(404,),
)
def get_dataset(dataset_id: str) -> Response:
    ds = runtime().datasets.get(identity(), dataset_id)
    return jsonify(dump_dataset(ds))


@op(
    bp,
    "PUT",
    "/datasets/{dataset_id}",
    "Replace a dataset description",
    tag="datasets",
    auth="token",
    request_schema=DatasetSchema,
    response_schema=DatasetSchema,
    errors=(400, 401, 403, 404, 409),
)
def put_dataset(dataset_id: str) -> Response:
    if _rdf_request():
        return _save_rdf(dataset_id)
    data = load(_dataset_schema, json_body())
    ds = runtime().datasets.update(identity(), dataset_id, _dataset_from(data))
    return jsonify(dump_dataset(ds))


@op(
    bp,
    "POST",
    "/datasets/{dataset_id}/publish",
    "Publish a draft",
    tag="datasets",
    auth="token",
    response_schema=DatasetSchema,
    errors=(401, 403, 404),
)
def publish_dataset(dataset_id: str) -> Response:
    ds = runtime().datasets.set_status(identity(), dataset_id, DatasetStatus.PUBLISHED)
    return jsonify(dump_dataset(ds))


@op(
    bp,
    "DELETE",
    "/datasets/{dataset_id}",
    "Withdraw a dataset (kept for audit)",
    tag="datasets",
    auth="token",
    response_schema=DatasetSchema,
    errors=(401, 403, 404),
)
def withdraw_dataset(dataset_id: str) -> Response:
    ds = runtime().datasets.set_status(identity(), dataset_id, DatasetStatus.WITHDRAWN)
    return jsonify(dump_dataset(ds))


@op(
    bp,
    "GET",
    "/organisations/{org_id}/datasets",
    "All datasets of an organisation, any status (its providers and admins)",
    tag="datasets",
    auth="token",
    response_schema=DatasetPageSchema,
    errors=(401, 403),
)
def organisation_datasets(org_id: str) -> Response:
    page = int_arg("page", 1, 1, 10_000)
    size = int_arg("size", 50, 1, 500)
    total, items = runtime().datasets.list_for_organisation(
        identity(), org_id, limit=size, offset=(page - 1) * size
    )
    return jsonify(
        {
            "total": total,
            "page": page,
            "size": size,
            "hits": [dump_dataset(d) for d in items],
            "facets": [],
        }
    )
