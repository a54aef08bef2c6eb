"""Route declarations that double as the OpenAPI source.

``@op(bp, "POST", "/organisations", ...)`` registers the view on the blueprint and records its
summary, input and output schemas and auth, from which ``openapi.py`` builds the document.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, g, request

from catalogue.errors import UnsupportedMediaType, ValidationError
from catalogue.model.identity import Identity
from catalogue.runtime import Runtime
from catalogue.services.search import bounded_int


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI style: /datasets/{dataset_id}
    summary: str
    tag: str
    auth: str  # "public", "token", "admin"
    request_schema: Any = None
    response_schema: Any = None
    status: int = 200
    query: tuple[tuple[str, str, str], ...] = ()  # (name, type, description)
    errors: tuple[int, ...] = field(default=())


OPERATIONS: list[Operation] = []


def _flask_path(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def op(
    bp: Blueprint,
    method: str,
    path: str,
    summary: str,
    *,
    tag: str,
    auth: str = "public",
    request_schema: Any = None,
    response_schema: Any = None,
    status: int = 200,
    query: tuple[tuple[str, str, str], ...] = (),
    errors: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    prefix = bp.url_prefix or ""
    OPERATIONS.append(
        Operation(
            method,
            prefix + path,
            summary,
            tag,
            auth,
            request_schema,
            response_schema,
            status,
            query,
            errors,
        )
    )

    def decorator(view: Callable[..., Any]) -> Callable[..., Any]:
        bp.add_url_rule(
            _flask_path(path), endpoint=f"{view.__name__}", view_func=view, methods=[method]
        )
        return view

    return decorator


def runtime() -> Runtime:
    rt: Runtime = current_app.extensions["catalogue"]
    return rt


def identity() -> Identity:
    ident: Identity = g.identity
    return ident


def json_body() -> Any:
    # a form body is parsed into request.form and leaves request.data empty: check the type
    # first, so that it is refused as the wrong media type, not as a missing body
    if request.content_length and not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    if not request.data:
        raise ValidationError("a JSON request body is required")
    if not request.is_json:
        raise UnsupportedMediaType("send the body as application/json")
    try:
        data = request.get_json(silent=True)
    except RecursionError:  # json.loads gives up on deep nesting with RecursionError
        raise ValidationError("the request body is nested too deeply") from None
    if data is None:
        raise ValidationError("the request body is not valid JSON")
    return data


def int_arg(name: str, default: int, low: int, high: int) -> int:
    return bounded_int(request.args.get(name), name, default, low, high)
