"""Whatever a client sends, every route answers with a 4xx JSON envelope: never a 5xx, never a
body that is not JSON (contract §1.1 and DESIGN §1: bad input is a 400, not a 500)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_contract import (
    BODY_ROUTES,
    PASSWORD,
    ROUTES,
    Account,
    Route,
    assert_error,
    envelope,
    mint,
    route_id,
    unique_name,
)

pytestmark = pytest.mark.contract

FIELDS = [
    "id",
    "username",
    "email",
    "password",
    "full_name",
    "bio",
    "avatar_url",
    "login",
    "refresh_token",
    "old_password",
    "new_password",
]
TWO_MIB = 2 * 1024 * 1024


def every_field(value: Any) -> dict[str, Any]:
    return {name: value for name in FIELDS}


def _raw(value: Any) -> bytes:
    return value if isinstance(value, bytes) else json.dumps(value).encode()


BODIES: dict[str, Any] = {
    # not JSON, or not an object
    "empty": b"",
    "garbage": b"\x00\x01\x02garbage",
    "nul-before-json": b"\x00{}",
    "invalid-utf8": b'{"username": "\xff\xfe\xfd"}',
    "nan": b'{"id": NaN, "username": Infinity}',
    "array": [],
    "array-of-object": [{"username": "abc"}],
    "string": "just a string",
    "number": 12345,
    "negative-float": -0.5,
    "bool": True,
    "null": None,
    # wrong JSON types in every field
    "numbers": every_field(12345),
    "floats": every_field(1.5),
    "bools": every_field(True),
    "lists": every_field(["x"]),
    "objects": every_field({"x": "y"}),
    "huge-exponent": b'{"id": 1e400, "username": 1e400, "avatar_url": 1e400}',
    "int64-overflow": b'{"id": 99999999999999999999999999, "password": 99999999999999999999}',
    "ten-thousand-digits": b'{"id": ' + b"9" * 10_000 + b"}",
    "deep-nesting": b"[" * 100_000 + b"]" * 100_000,
    "deep-object": b'{"username": ' + b'{"a": ' * 50_000 + b"1" + b"}" * 50_001,
    # missing fields, empty values
    "empty-object": {},
    "empty-strings": every_field(""),
    # unicode that breaks a rule (too long in code points, or not an email/url/token)
    "emoji": every_field("😀" * 40),
    "rtl-and-zero-width": every_field("\u202e\u200b\u0301" * 20),
    "escaped-surrogates": b'{"username": "\\ud83d\\ude00\\ud800", "email": "\\udfff@x.io", "id": "\\ud800"}',
    # very long strings (still under the 1 MiB limit)
    "long-strings": every_field("x" * 60_000),
    # SQL metacharacters
    "sql": every_field("' OR 1=1 --"),
    "like-wildcards": every_field("%_\\"),
}

PATH_VALUES = [
    "-1",
    "0",
    "99999999999999999999",
    "1e3",
    "%00",
    "%2500",
    "' OR 1=1 --",
    "%",
    "_",
    "%5C",
    "1;DROP TABLE users",
    "%F0%9F%98%80",
    "%ED%A0%80",
    "%FF",
    "%0A",
    "x" * 5000,
]

PATH_ROUTES = [r for r in ROUTES if "{" in r.path]


def assert_rejected(response: httpx.Response) -> dict[str, Any]:
    """A 4xx answer in the error envelope."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    body = envelope(response)
    assert set(body) == {"status", "message"} and isinstance(body["message"], str) and body["message"], body
    return body


def valid_path(route: Route, account: Account) -> str:
    return route.url(id=str(account.id), username=account.username, email=account.email)


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_two_mib_body_is_413(api: httpx.Client, account: Account, route: Route) -> None:
    body = json.dumps({"username": "x" * TWO_MIB}).encode()
    params = {"query": "abc"} if route.number == 9 else None
    response = api.request(
        route.method, valid_path(route, account), content=body, params=params, headers=account.headers
    )
    assert_rejected(response)
    assert response.status_code == 413


@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
def test_two_mib_chunked_body_is_413(api: httpx.Client, account: Account, route: Route) -> None:
    """Without a Content-Length the limit holds while the body streams in."""

    def chunks() -> Iterator[bytes]:
        yield b'{"username": "'
        for _ in range(32):
            yield b"x" * 65536
        yield b'"}'

    response = api.request(route.method, route.path, content=chunks(), headers=account.headers)
    assert "content-length" not in response.request.headers
    assert_rejected(response)
    assert response.status_code == 413


@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_body(api: httpx.Client, account: Account, route: Route, name: str) -> None:
    response = api.request(route.method, route.path, content=_raw(BODIES[name]), headers=account.headers)
    assert_rejected(response)


@pytest.mark.parametrize("route", PATH_ROUTES, ids=route_id)
@pytest.mark.parametrize("value", PATH_VALUES, ids=lambda v: v[:24])
def test_hostile_path_parameter(api: httpx.Client, account: Account, route: Route, value: str) -> None:
    path = route.url(id=value, username=value, email=value)
    assert_rejected(api.request(route.method, path, headers=account.headers))


@pytest.mark.parametrize(
    "query",
    [
        "' OR 1=1 --",
        "%",
        "_",
        "\\",
        "%_\\",
        "\x00",
        "a\x00b",
        "😀",
        "\u202e\u200b",
        "'; DROP TABLE users; --",
        "x" * 5000,
    ],
    ids=lambda q: repr(q[:16]),
)
@pytest.mark.parametrize(
    "paging",
    [
        {},
        {"page": "-1", "limit": "0"},
        {"page": "99999999999999999999", "limit": "1e3"},
        {"page": "1000000", "limit": "100"},
    ],
    ids=["default", "negative", "huge", "far"],
)
def test_hostile_search(api: httpx.Client, query: str, paging: dict[str, str]) -> None:
    """Search accepts any text as a literal: an answer lists only users that contain it."""
    response = api.get("/users/search", params={"query": query, **paging})
    if response.status_code == 200:
        users = envelope(response)["data"]["users"]
        needle = query.lower()
        assert all(
            needle in " ".join(str(u.get(k, "")) for k in ("username", "email", "full_name")).lower() for u in users
        )
    else:
        assert_rejected(response)
        assert response.json()["message"] == "invalid search query"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.jwt], ids=route_id)
@pytest.mark.parametrize(
    "authorization",
    [b"Bearer " + b"x" * 8000, b"Bearer \xc3\xa9.\xff.x", b"Bearer ' OR 1=1 --", b"Bearer %00", b"Bearer ...."],
    ids=["long", "non-ascii", "sql", "percent-nul", "dots"],
)
def test_hostile_authorization_header(api: httpx.Client, route: Route, authorization: bytes) -> None:
    response = api.request(route.method, route.url(id="1"), headers={b"Authorization": authorization})
    assert assert_rejected(response)["message"] == "invalid token"


def valid_body(route: Route, account: Account) -> dict[str, Any]:
    name = unique_name()
    profile: dict[str, Any] = {
        "username": name,
        "email": f"{name}@example.com",
        "full_name": "Full Name",
        "bio": "A short bio",
    }
    return {
        1: {**profile, "password": PASSWORD, "avatar_url": "https://x.io/a.png"},
        2: {"login": account.username, "password": PASSWORD},
        3: {"refresh_token": account.refresh},
        4: {"refresh_token": account.refresh},
        5: {"old_password": PASSWORD, "new_password": "brand-new-pass"},
        10: {**profile, "password": PASSWORD, "avatar_url": "https://x.io/a.png"},
        11: {**profile, "id": account.id},
        13: {"avatar_url": "https://x.io/a.png"},
    }[route.number]


STRING_FIELDS = [
    (route, field)
    for route in BODY_ROUTES
    for field, value in valid_body(route, Account(1, "name", "e@x.io", PASSWORD, "a", "r")).items()
    if isinstance(value, str)
]


def _field_id(case: tuple[Route, str]) -> str:
    return f"{route_id(case[0])}-{case[1]}"


@pytest.mark.parametrize("case", STRING_FIELDS, ids=_field_id)
def test_nul_byte_in_a_field_is_rejected(api: httpx.Client, account: Account, case: tuple[Route, str]) -> None:
    """An otherwise valid body with a NUL in one string (PostgreSQL text cannot hold one)."""
    route, field = case
    body = valid_body(route, account)
    body[field] = body[field][:3] + "\x00" + body[field][3:]
    response = api.request(route.method, route.path, json=body, headers=account.headers)
    assert_rejected(response)


@pytest.mark.parametrize("case", STRING_FIELDS, ids=_field_id)
def test_lone_surrogate_in_a_field_is_not_a_crash(api: httpx.Client, account: Account, case: tuple[Route, str]) -> None:
    """Go's decoder turns an unpaired surrogate escape into U+FFFD: the request is judged on that."""
    route, field = case
    body = valid_body(route, account)
    body[field] = body[field][:3] + "\ud800" + body[field][3:]
    raw = json.dumps(body).encode()  # ASCII JSON with a `\ud800` escape
    assert b"\\ud800" in raw
    response = api.request(route.method, route.path, content=raw, headers=account.headers)
    assert response.status_code < 500, response.text[:300]
    envelope(response)


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
def test_backends_down_is_a_503_envelope(
    stranded_gateway_url: str, signing_key: Ed25519PrivateKey, route: Route
) -> None:
    """A dead service costs a fast 503 in the envelope (§1.5 `external service unavailable`)."""
    someone = Account(1, "someone", "someone@example.com", PASSWORD, mint(signing_key, 1), "refresh-token")
    body = valid_body(route, someone) if route.body else None
    params = {"query": "someone"} if route.number == 9 else None
    with httpx.Client(base_url=f"{stranded_gateway_url}/api/v1", timeout=15.0) as client:
        response = client.request(
            route.method, valid_path(route, someone), json=body, params=params, headers=someone.headers
        )
    assert_error(response, 503, "external service unavailable")
