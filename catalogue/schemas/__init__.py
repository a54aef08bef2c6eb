"""Marshmallow schemas: API input validation and output shapes (also the OpenAPI source)."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate

from catalogue.errors import ValidationError as CatalogueValidationError

_LANG_TAG = validate.Regexp(r"^[a-z]{2,3}(-[A-Za-z0-9]+)*$")
_LANG_MAP = fields.Dict(
    keys=fields.String(validate=_LANG_TAG),
    values=fields.String(validate=validate.Length(max=20000)),
)


class ErrorSchema(Schema):
    """The one error shape every failing request returns."""

    class _Error(Schema):
        status = fields.Integer(required=True, metadata={"example": 403})
        code = fields.String(required=True, metadata={"example": "forbidden"})
        message = fields.String(required=True)
        details = fields.Raw(allow_none=True)
        request_id = fields.String(required=True)

    error = fields.Nested(_Error, required=True)


class OrganisationSchema(Schema):
    id = fields.String(required=True, validate=validate.Regexp(r"^[a-z0-9][a-z0-9-]{1,62}$"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=300))
    country = fields.String(
        load_default=None, allow_none=True, validate=validate.Regexp(r"^[A-Z]{2}$")
    )
    homepage = fields.Url(load_default=None, allow_none=True)
    created_at = fields.DateTime(dump_only=True)


class UserSchema(Schema):
    id = fields.String(dump_only=True)
    username = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9._@-]{2,100}$"))
    role = fields.String(
        required=True, validate=validate.OneOf(["admin", "provider", "researcher"])
    )
    organisation_id = fields.String(load_default=None, allow_none=True)
    display_name = fields.String(
        load_default=None, allow_none=True, validate=validate.Length(max=200)
    )
    email = fields.Email(load_default=None, allow_none=True)
    active = fields.Boolean(dump_only=True)
    created_at = fields.DateTime(dump_only=True)


class TokenRequestSchema(Schema):
    username = fields.String(
        load_default=None, metadata={"description": "Whose token (admins only; default: you)"}
    )
    name = fields.String(load_default="", validate=validate.Length(max=200))
    ttl_days = fields.Integer(
        load_default=None,
        allow_none=True,
        validate=validate.Range(min=0, max=3650),
        metadata={"description": "Lifetime in days; 0 = no expiry"},
    )


class TokenSchema(Schema):
    id = fields.String()
    name = fields.String()
    username = fields.String(allow_none=True)
    created_at = fields.DateTime()
    expires_at = fields.DateTime(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)


class IssuedTokenSchema(TokenSchema):
    token = fields.String(metadata={"description": "The bearer token. Shown only once."})


class DistributionSchema(Schema):
    title = _LANG_MAP
    access_url = fields.Url(load_default=None, allow_none=True)
    download_url = fields.Url(load_default=None, allow_none=True)
    media_type = fields.String(load_default=None, allow_none=True)
    format = fields.String(load_default=None, allow_none=True)
    licence = fields.String(load_default=None, allow_none=True)
    byte_size = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=0))


def _codes() -> fields.List:
    return fields.List(
        fields.String(validate=validate.Length(min=1, max=500)),
        load_default=list,
        validate=validate.Length(max=500),
    )


class DatasetSchema(Schema):
    """A dataset description as JSON (the structured, searchable fields)."""

    class Meta:
        unknown = EXCLUDE

    id = fields.String(dump_only=True)
    identifier = fields.String(required=True, validate=validate.Length(min=1, max=500))
    organisation_id = fields.String(required=True)
    status = fields.String(
        load_default="draft", validate=validate.OneOf(["draft", "published", "withdrawn"])
    )
    iri = fields.Url(load_default=None, allow_none=True)
    title = fields.Dict(
        keys=fields.String(), values=fields.String(), required=True, validate=validate.Length(min=1)
    )
    description = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    keywords = _codes()
    themes = _codes()
    health_categories = _codes()
    conditions = _codes()
    modalities = _codes()
    body_parts = _codes()
    manufacturers = _codes()
    countries = fields.List(
        fields.String(validate=validate.Regexp(r"^[A-Z]{2}$")), load_default=list
    )
    sexes = fields.List(
        fields.String(validate=validate.OneOf(["female", "male", "other", "unknown"])),
        load_default=list,
    )
    access_rights = fields.String(load_default=None, allow_none=True)
    licence = fields.String(load_default=None, allow_none=True)
    number_of_individuals = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0)
    )
    number_of_studies = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0)
    )
    min_age = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=150)
    )
    max_age = fields.Integer(
        load_default=None, allow_none=True, validate=validate.Range(min=0, max=150)
    )
    temporal_start = fields.Date(load_default=None, allow_none=True)
    temporal_end = fields.Date(load_default=None, allow_none=True)
    landing_page = fields.Url(load_default=None, allow_none=True)
    issued = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=UTC)
    modified = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=UTC)
    distributions = fields.List(fields.Nested(DistributionSchema), load_default=list)
    aggregates = fields.Dict(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    updated_at = fields.DateTime(dump_only=True)
    version = fields.Integer(dump_only=True)


class FacetBucketSchema(Schema):
    key = fields.String()
    label = fields.String()
    count = fields.Integer()
    selected = fields.Boolean()
    children = fields.List(fields.Nested(lambda: FacetBucketSchema()))  # hierarchical facets


class FacetSchema(Schema):
    name = fields.String()
    label = fields.String()
    hierarchical = fields.Boolean()
    vocabulary = fields.String(allow_none=True)
    buckets = fields.List(fields.Nested(FacetBucketSchema))


class SearchHitSchema(DatasetSchema):
    highlights = fields.Dict(
        keys=fields.String(), values=fields.String(),
        metadata={"description": "title / description with matches in <mark> (HTML-escaped)"})


class DatasetPageSchema(Schema):
    total = fields.Integer()
    page = fields.Integer()
    size = fields.Integer()
    sort = fields.String()
    next_after = fields.Integer(allow_none=True,
                                metadata={"description": "cursor for ?after= (sorted searches)"})
    hits = fields.List(fields.Nested(SearchHitSchema))
    facets = fields.List(fields.Nested(FacetSchema))


class HealthSchema(Schema):
    status = fields.String()
    details = fields.Dict()


def load(schema: Schema, data: Any) -> Any:
    """Validate input; turn marshmallow errors into the catalogue's 400 with field messages."""
    if not isinstance(data, dict):
        raise CatalogueValidationError("the request body must be a JSON object")
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise CatalogueValidationError("the request is not valid", details=exc.messages) from None


class HarvestSourceSchema(Schema):
    id = fields.String(dump_only=True)
    organisation_id = fields.String(required=True)
    kind = fields.String(
        required=True, validate=validate.OneOf(["dcat", "fhir", "omop", "dicomweb"])
    )
    name = fields.String(load_default="", validate=validate.Length(max=200))
    url = fields.String(required=True, validate=validate.Length(min=1, max=4096))
    schedule = fields.String(
        load_default=None,
        allow_none=True,
        metadata={"description": "@hourly, @daily, @weekly, every N m|h|d"},
    )
    validation_mode = fields.String(
        load_default="lenient", validate=validate.OneOf(["strict", "lenient"])
    )
    dataset_id = fields.String(load_default=None, allow_none=True)
    config = fields.Dict(load_default=dict, metadata={"description": 'e.g. {"incremental": true}'})
    allow_private = fields.Boolean(
        load_default=False, metadata={"description": "admins only: allow private IPs"}
    )
    enabled = fields.Boolean(load_default=True)
    created_at = fields.DateTime(dump_only=True)
    next_run_at = fields.DateTime(dump_only=True, allow_none=True)
    last_run_at = fields.DateTime(dump_only=True, allow_none=True)


class HarvestSourceUpdateSchema(Schema):
    """The fields of a source that can change; the others are refused as unknown."""

    name = fields.String(validate=validate.Length(max=200))
    url = fields.String(validate=validate.Length(min=1, max=4096))
    schedule = fields.String(
        allow_none=True,
        metadata={"description": "@hourly, @daily, @weekly, every N m|h|d; null: on demand"},
    )
    validation_mode = fields.String(validate=validate.OneOf(["strict", "lenient"]))
    config = fields.Dict(metadata={"description": 'replaces the configuration, e.g. '
                                                  '{"incremental": true}'})
    allow_private = fields.Boolean(metadata={"description": "admins only"})
    enabled = fields.Boolean(metadata={"description": "false pauses the schedule"})


class SourceDeletedSchema(Schema):
    id = fields.String()
    datasets_withdrawn = fields.Integer()
    datasets_released = fields.Integer(
        metadata={"description": "datasets left published with no source"})


class HarvestRunSchema(Schema):
    id = fields.String()
    source_id = fields.String(allow_none=True)
    organisation_id = fields.String()
    kind = fields.String()
    status = fields.String()
    dry_run = fields.Boolean()
    started_at = fields.DateTime()
    finished_at = fields.DateTime(allow_none=True)
    counts = fields.Dict()
    error = fields.String(allow_none=True)


class RecordErrorSchema(Schema):
    record = fields.String(allow_none=True)
    location = fields.String(allow_none=True)
    severity = fields.String()
    property = fields.String(allow_none=True)
    message = fields.String()


class RunRequestSchema(Schema):
    dry_run = fields.Boolean(load_default=False)
