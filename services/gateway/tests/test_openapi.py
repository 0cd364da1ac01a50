"""The checked-in OpenAPI document is the one the code generates, and it documents the contract."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import pytest
from gateway_contract import ROUTES, Route, route_id

from pinstack_gateway.main import create_app
from pinstack_gateway.openapi import DOCUMENT, render

pytestmark = [pytest.mark.contract, pytest.mark.unit]


@pytest.fixture(scope="module")
def generated() -> bytes:
    return render(create_app())


@pytest.fixture(scope="module")
def document(generated: bytes) -> dict[str, Any]:
    return json.loads(generated)


def test_checked_in_document_is_up_to_date(generated: bytes) -> None:
    assert DOCUMENT.exists(), f"{DOCUMENT} is missing: run `make openapi` and commit it"
    assert DOCUMENT.read_bytes() == generated, f"{DOCUMENT} is stale: run `make openapi` and commit the result"


def _operation(document: dict[str, Any], route: Route) -> dict[str, Any]:
    template = re.sub(r"\{[^}]+\}", "{}", "/api/v1" + route.path)
    for path, operations in document["paths"].items():
        if re.sub(r"\{[^}]+\}", "{}", path) == template and route.method.lower() in operations:
            return operations[route.method.lower()]
    raise AssertionError(f"{route.method} /api/v1{route.path} is not in the OpenAPI document")


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_every_contract_route_is_documented(document: dict[str, Any], route: Route) -> None:
    operation = _operation(document, route)
    security = operation.get("security")
    if route.jwt:
        assert security == [{"BearerAuth": []}]
    else:
        assert not security
    if route.body:
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert schema["$ref"].split("/")[-1] in document["components"]["schemas"]
        assert "request body too large" in operation["responses"]["413"]["description"]
    success = {1: "201", 10: "201", 12: "204", 16: "201"}.get(route.number, "200")
    assert success in operation["responses"]
    # Bad input is a 400 in the envelope; 422 is only an Idempotency-Key used for another request.
    keyed = any(p["name"] == "Idempotency-Key" for p in operation.get("parameters", ()))
    assert keyed == (route.number in (16, 19))
    if keyed:
        assert "Idempotency-Key" in operation["responses"]["422"]["description"]
    else:
        assert "422" not in operation["responses"]
    limited = route.path.startswith("/auth/") or (route.jwt and route.method != "GET")
    assert ("429" in operation["responses"]) == limited
    if limited:
        assert {"Retry-After", "RateLimit-Remaining"} <= operation["responses"]["429"]["headers"].keys()
    if route.number in (9, 14, 21, 22, 23):  # the upstream lists that also page by cursor
        assert "cursor" in {p["name"] for p in operation["parameters"]}


def test_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["BearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    secured = [
        (path, method)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        if operation.get("security")
    ]
    # routes 5, 10-13, 16-20 and 23-29
    # plus the feed, like, unlike, view, comment and comment-deleting routes beyond the contract
    assert len(secured) == sum(r.jwt for r in ROUTES) + 6 == 23


def _concrete(path: str) -> str:
    examples = {"username": "ada", "email": "ada@example.com"}
    return re.sub(r"\{([^}]+)\}", lambda m: examples.get(m.group(1), "7"), path)


@pytest.mark.parametrize("path", sorted(json.loads(DOCUMENT.read_bytes())["paths"]))
async def test_allow_names_exactly_the_documented_methods(document: dict[str, Any], path: str) -> None:
    """`OPTIONS` (a method no route has) is a 405 whose `Allow` lists the resource's own methods:
    `/notification/feed` is not `/notification/{notification_id}`."""
    transport = httpx.ASGITransport(app=create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
        response = await client.options(_concrete(path))
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} == {m.upper() for m in document["paths"][path]}


def _parameters(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, parameter)
        for path, operations in document["paths"].items()
        for method, operation in operations.items()
        for parameter in operation.get("parameters", ())
    ]


def test_path_ids_are_positive_int64(document: dict[str, Any]) -> None:
    ids = [(path, p) for path, _, p in _parameters(document) if p["in"] == "path" and p["name"].endswith("_id")]
    assert len(ids) == 17
    for path, parameter in ids:
        assert parameter["schema"]["type"] == "integer", path
        assert (parameter["schema"]["minimum"], parameter["schema"]["maximum"]) == (1, 2**63 - 1), path


def test_every_cursor_documents_its_format(document: dict[str, Any]) -> None:
    cursors = {path: p["schema"] for path, _, p in _parameters(document) if p["name"] == "cursor"}
    assert len(cursors) == 8
    for path, schema in cursors.items():
        assert schema["format"] == (
            "pinstack-id-cursor" if path.endswith(("/search", "/comments")) else "pinstack-cursor"
        )
        assert "base64url" in schema["description"]


def _body(document: dict[str, Any], name: str) -> dict[str, Any]:
    return document["components"]["schemas"][name]


def test_required_fields_are_the_ones_whose_absence_is_refused(document: dict[str, Any]) -> None:
    assert _body(document, "RegisterRequest")["required"] == ["username", "email", "password"]
    assert _body(document, "LoginRequest")["required"] == ["login", "password"]
    assert _body(document, "UpdateUserRequest")["required"] == ["id"]
    assert _body(document, "CreatePostRequest")["required"] == ["title"]
    assert _body(document, "MediaItemRequest")["required"] == ["url", "type", "position"]
    assert _body(document, "SendNotificationRequest")["required"] == ["user_id", "type"]
    assert "required" not in _body(document, "UpdatePostRequest")
    assert "default" not in _body(document, "RegisterRequest")["properties"]["username"]


def test_lengths_are_the_services_limits(document: dict[str, Any]) -> None:
    register = _body(document, "RegisterRequest")["properties"]
    assert register["password"]["maxLength"] == 256  # users and auth refuse longer passwords
    assert register["email"]["maxLength"] == 254
    assert _body(document, "LoginRequest")["properties"]["password"]["maxLength"] == 256
    tags = _body(document, "CreatePostRequest")["properties"]["tags"]["anyOf"][0]
    assert (tags["maxItems"], tags["items"]["maxLength"]) == (10, 50)
    position = _body(document, "MediaItemRequest")["properties"]["position"]
    assert (position["minimum"], position["maximum"]) == (1, 9)
    search = next(p for path, _, p in _parameters(document) if path.endswith("/search") and p["name"] == "query")
    assert search["required"] and search["schema"]["maxLength"] == 100
