"""The gateway's OpenAPI 3 document.

Request bodies are decoded by `body.json_body` (Go semantics) rather than by FastAPI, so their
schemas are added here from the models the decoders carry. `python -m pinstack_gateway.openapi`
writes the checked-in `services/gateway/openapi.json`; a test fails when it is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

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
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        for method in route.methods or ():
            operation = document["paths"][route.path_format][method.lower()]
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
                operation["requestBody"] = {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
                }
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def render(app: FastAPI) -> bytes:
    return orjson.dumps(app.openapi(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> int:
    from pinstack_gateway.main import create_app

    DOCUMENT.write_bytes(render(create_app()))
    print(f"wrote {DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
