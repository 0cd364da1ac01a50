"""The gateway's OpenAPI 3 document.

Request bodies are decoded by `body.json_body` (Go semantics) rather than by FastAPI, so their
schemas are added here from the models the decoders carry. `python -m pinstack_gateway.write_openapi`
(`make openapi`) writes the checked-in `services/gateway/openapi.json`; a test fails when it is stale.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from pinstack_contracts.limits import (
    CURSOR_MAX,
    ID_MAX,
    ID_MIN,
    PAGE_MIN,
    PAGE_SIZE_MAX,
    PAGE_SIZE_MIN,
    SEARCH_QUERY_MAX,
    SEARCH_QUERY_MIN,
    USERNAME_MAX,
    USERNAME_MIN,
)
from pinstack_gateway.idempotency import MAX_KEY_LENGTH
from pinstack_kit.validation import INT64_MAX, SIMPLE_EMAIL

DOCUMENT = Path(__file__).resolve().parents[2] / "openapi.json"
BEARER = {"BearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
WRITES = {"post", "put", "patch", "delete"}
_QUOTA_HEADERS = {
    name: {"description": text, "schema": {"type": "integer"}}
    for name, text in (
        ("RateLimit-Limit", "requests allowed in the window"),
        ("RateLimit-Remaining", "requests left in the window"),
        ("RateLimit-Reset", "seconds until the window ends"),
    )
}
TOO_MANY = {
    "description": "Rate limit reached (per client IP on /auth, per login name on failed logins, per user on "
    'writes): `{"status":429,"message":"too many requests"}`',
    "headers": {
        **_QUOTA_HEADERS,
        "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}},
    },
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
}


# What the gateway and its services enforce on path and query values, which the endpoints take as
# raw strings to parse them the upstream way (params.py): a value outside these is a 400.
INT64 = {"type": "integer", "format": "int64", "maximum": INT64_MAX}
PATH_ID = {**INT64, "minimum": ID_MIN, "maximum": ID_MAX}
_CURSOR = {"type": "string", "maxLength": CURSOR_MAX}
_PREVIOUS = "`next_cursor` (or the `Link` header's cursor) of the previous page; absent or empty: the first page. "
TIME_CURSOR = {
    **_CURSOR,
    "format": "pinstack-cursor",
    "description": _PREVIOUS + "Its format: base64url without padding of `<key>:<id>`, two decimal integers, "
    "the key a time in microseconds since 1970-01-01 UTC (milliseconds for the home feed) up to the end "
    "of year 9999, the id 0 to 2^63-1.",
}
ID_CURSOR = {
    **_CURSOR,
    "format": "pinstack-id-cursor",
    "description": _PREVIOUS + "Its format: base64url without padding of the last id shown, 0 to 2^63-1.",
}
LIMIT = {"type": "integer", "minimum": PAGE_SIZE_MIN, "maximum": PAGE_SIZE_MAX}
PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "user_id": PATH_ID,
    "post_id": PATH_ID,
    "comment_id": PATH_ID,
    "notification_id": PATH_ID,
    "username": {"type": "string", "minLength": USERNAME_MIN, "maxLength": USERNAME_MAX},
    "email": {"type": "string", "pattern": f"^{SIMPLE_EMAIL.pattern}$"},
}
# (path, query parameter) -> (required, schema); every other `cursor` is a TIME_CURSOR.
QUERY_PARAMETERS: dict[tuple[str, str], tuple[bool, dict[str, Any]]] = {
    ("/api/v1/users/search", "cursor"): (False, ID_CURSOR),
    ("/api/v1/posts/{post_id}/comments", "cursor"): (False, ID_CURSOR),
    ("/api/v1/users/search", "query"): (
        True,
        {"type": "string", "minLength": SEARCH_QUERY_MIN, "maxLength": SEARCH_QUERY_MAX},
    ),
    ("/api/v1/notification/feed", "page"): (False, {"type": "integer", "format": "int32", "minimum": PAGE_MIN}),
    ("/api/v1/notification/feed", "limit"): (False, LIMIT),
    ("/api/v1/posts/list", "author_id"): (False, {**INT64, "minimum": 0}),
    ("/api/v1/posts/list", "offset"): (False, {**INT64, "minimum": 0}),
    ("/api/v1/posts/list", "limit"): (False, {**LIMIT, "minimum": 0}),
    ("/api/v1/posts/list", "created_after"): (False, {"type": "string", "format": "date-time"}),
    ("/api/v1/posts/list", "created_before"): (False, {"type": "string", "format": "date-time"}),
    ("/api/v1/feed", "limit"): (False, LIMIT),
    ("/api/v1/posts/{post_id}/likes", "limit"): (False, LIMIT),
    ("/api/v1/posts/{post_id}/comments", "limit"): (False, LIMIT),
    ("/api/v1/posts/{post_id}/comments", "parent_id"): (False, PATH_ID),
}


def _declare_parameters(path: str, operation: dict[str, Any], unused: set[tuple[str, str]]) -> None:
    for parameter in operation.get("parameters", ()):
        name, where = parameter["name"], parameter["in"]
        if where == "path":
            parameter["schema"] = {**PATH_PARAMETERS[name], "title": parameter["schema"]["title"]}
        elif where == "query" and ((path, name) in QUERY_PARAMETERS or name == "cursor"):
            unused.discard((path, name))
            required, schema = QUERY_PARAMETERS.get((path, name), (False, TIME_CURSOR))
            parameter["schema"] = schema
            if name == "cursor":
                parameter.pop("description", None)  # the schema's
            if required:
                parameter["required"] = True
        elif where == "header" and name == "Idempotency-Key":
            parameter["schema"] = {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH}


TOO_LARGE = {
    "description": "The body is over the gateway's limit (`MAX_BODY_BYTES`, 1 MiB by default): "
    '`{"status":413,"message":"request body too large"}`',
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
}
KEY_REUSED = {
    "description": "The Idempotency-Key was already used for a different request (method, path or body)",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}},
}


def _idempotent(route: APIRoute) -> bool:
    return any(getattr(d.call, "__name__", "") == "_idempotency_key" for d in route.dependant.dependencies)


def _rate_limited(route: APIRoute, method: str) -> bool:
    return route.path_format.startswith("/api/v1/auth/") or (_needs_auth(route) and method in WRITES)


def _body_models(route: APIRoute) -> list[Any]:
    models = (getattr(d.call, "body_model", None) for d in route.dependant.dependencies)
    return [model for model in models if model is not None]


def _needs_auth(route: APIRoute) -> bool:
    return any(getattr(d.call, "__name__", "") == "_current_user" for d in route.dependant.dependencies)


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, looking inside included routers (newer FastAPI keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def build_openapi(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    document["components"]["securitySchemes"] = BEARER
    unused = set(QUERY_PARAMETERS)
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
            _declare_parameters(route.path_format, operation, unused)
            operation["responses"].pop("422", None)  # bad input is 400 in the envelope
            if _needs_auth(route):
                operation["security"] = [{"BearerAuth": []}]
            if _rate_limited(route, method.lower()):
                operation["responses"]["429"] = TOO_MANY
            if _idempotent(route):
                operation["responses"]["422"] = KEY_REUSED
                operation["responses"]["409"] = {
                    **operation["responses"].get("409", {}),
                    "description": "Conflict; or a request with this Idempotency-Key is still in progress",
                }
            for model in _body_models(route):
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
                operation["responses"]["413"] = TOO_LARGE
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
                }
    if unused:  # a renamed parameter must not silently lose its rules
        raise RuntimeError(f"QUERY_PARAMETERS names parameters no route has: {sorted(unused)}")
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def render(app: FastAPI) -> bytes:
    return orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
