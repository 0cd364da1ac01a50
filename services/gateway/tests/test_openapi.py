"""The checked-in OpenAPI document is the one the code generates, and it documents the contract."""

from __future__ import annotations

import json
import re
from typing import Any

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
