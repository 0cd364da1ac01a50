"""Whatever a client sends, every route answers with a 4xx JSON envelope: never a 5xx, never a
body that is not JSON (contract §1.1 and DESIGN §1: bad input is a 400, not a 500)."""

from __future__ import annotations

import http.client
import itertools
import json
import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

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
    "title",
    "content",
    "tags",
    "media_items",
    "followee_id",
    "user_id",
    "type",
    "payload",
]
NOBODY = 9_000_000_000_000_012_345  # a well-formed id no account has
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
    "numbers": every_field(NOBODY),
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
IMAGE = {"url": "https://x.io/a.png", "type": "image", "position": 1}


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

    response = api.request(route.method, valid_path(route, account), content=chunks(), headers=account.headers)
    assert "content-length" not in response.request.headers
    assert_rejected(response)
    assert response.status_code == 413


def raw_exchange(gateway_url: str, head: str, body: Iterator[bytes]) -> http.client.HTTPResponse:
    """Sends a request as a client that writes its whole body before reading any answer (what
    most clients do) and reads the answer; a connection the server reset raises here."""
    address = urlsplit(gateway_url)
    sock = socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=30)
    sock.sendall(head.encode() + b"\r\n")
    for chunk in body:
        sock.sendall(chunk)
    response = http.client.HTTPResponse(sock)
    response.begin()
    return response


def assert_413(response: http.client.HTTPResponse) -> None:
    assert response.status == 413
    assert response.getheader("content-type", "").startswith("application/json")
    assert json.loads(response.read()) == {"status": 413, "message": "request body too large"}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.number in (6, 16, 29)], ids=route_id)
def test_a_client_still_sending_an_oversized_body_reads_the_413(
    gateway_url: str, account: Account, route: Route
) -> None:
    """Eight times the limit, sent in full before reading, by a one-shot client (`Connection:
    close`): the gateway reads the body to the end (throwing it away) before it answers and closes.
    Answering at once, it closed the connection with the body unread, the kernel reset it, and
    the client, still sending, got a broken pipe instead of the answer."""
    size, chunk = 8 * 1024 * 1024, 64 * 1024
    head = (
        f"{route.method} /api/v1{valid_path(route, account)} HTTP/1.1\r\nHost: gateway\r\nConnection: close\r\n"
        f"Authorization: Bearer {account.access}\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n"
    )
    assert_413(raw_exchange(gateway_url, head, (b"x" * chunk for _ in range(size // chunk))))


def test_an_oversized_chunked_body_is_413_on_a_route_that_reads_none(gateway_url: str, account: Account) -> None:
    chunk = b"x" * 65536
    body = (b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(32))
    head = f"GET /api/v1/users/{account.id} HTTP/1.1\r\nHost: gateway\r\nTransfer-Encoding: chunked\r\n"
    assert_413(raw_exchange(gateway_url, head, itertools.chain(body, [b"0\r\n\r\n"])))


def test_a_client_that_expects_100_continue_hears_413_before_sending(gateway_url: str, account: Account) -> None:
    head = (
        "POST /api/v1/posts HTTP/1.1\r\nHost: gateway\r\nExpect: 100-continue\r\n"
        f"Authorization: Bearer {account.access}\r\nContent-Length: {8 * 1024 * 1024}\r\n"
    )
    assert_413(raw_exchange(gateway_url, head, iter([])))


@pytest.mark.parametrize("route", BODY_ROUTES, ids=route_id)
@pytest.mark.parametrize("name", list(BODIES))
def test_hostile_body(api: httpx.Client, account: Account, route: Route, name: str) -> None:
    response = api.request(
        route.method, valid_path(route, account), content=_raw(BODIES[name]), headers=account.headers
    )
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
        16: {"title": "A title", "content": "Some content", "tags": ["tag"], "media_items": [IMAGE]},
        17: {"title": "New title", "content": "New content"},
        19: {"followee_id": NOBODY},
        20: {"followee_id": NOBODY},
        29: {"user_id": account.id, "type": "system", "payload": {"text": "hello"}},
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
    response = api.request(route.method, valid_path(route, account), json=body, headers=account.headers)
    assert_rejected(response)


@pytest.mark.parametrize("case", STRING_FIELDS, ids=_field_id)
def test_lone_surrogate_in_a_field_is_not_a_crash(api: httpx.Client, account: Account, case: tuple[Route, str]) -> None:
    """Go's decoder turns an unpaired surrogate escape into U+FFFD: the request is judged on that."""
    route, field = case
    body = valid_body(route, account)
    body[field] = body[field][:3] + "\ud800" + body[field][3:]
    raw = json.dumps(body).encode()  # ASCII JSON with a `\ud800` escape
    assert b"\\ud800" in raw
    response = api.request(route.method, valid_path(route, account), content=raw, headers=account.headers)
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


QUERY_PARAMS = {
    14: ["author_id", "created_after", "created_before", "offset", "limit"],
    21: ["page", "limit"],
    22: ["page", "limit"],
    23: ["page", "limit"],
}
QUERY_VALUES = [
    "-1",
    "0",
    "9223372036854775807",
    "-9223372036854775809",
    "99999999999999999999",
    "2147483648",
    "1e3",
    "\x00",
    "1\x00",
    "' OR 1=1 --",
    "%",
    "😀",
    " ",
    "x" * 5000,
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+23:59",
    "2025-01-01T00:00:00.1234567890123Z",
]


@pytest.mark.parametrize("route", [r for r in ROUTES if r.number in QUERY_PARAMS], ids=route_id)
@pytest.mark.parametrize("value", QUERY_VALUES, ids=lambda v: repr(v[:24]))
def test_hostile_query_value(api: httpx.Client, account: Account, route: Route, value: str) -> None:
    """Any value in any paging or filter parameter: an answer, never a 5xx."""
    for name in QUERY_PARAMS[route.number]:
        response = api.get(valid_path(route, account), params={name: value}, headers=account.headers)
        assert response.status_code < 500, (name, response.status_code, response.text[:300])
        envelope(response)


MEDIA = {"url": "https://x.io/a.png", "type": "image", "position": 1}
NESTED: dict[str, Any] = {
    "media-nul-url": {"media_items": [{**MEDIA, "url": "https://x.io/\x00"}]},
    "media-huge-position": {"media_items": [{**MEDIA, "position": 99999999999999999999}]},
    "media-negative-position": {"media_items": [{**MEDIA, "position": -1}]},
    "media-float-url": b'{"title": "t", "media_items": [{"url": 1e400, "type": "image", "position": 1}]}',
    "media-list-item": {"media_items": [[]]},
    "media-object-url": {"media_items": [{**MEDIA, "url": {"a": 1}}]},
    "media-javascript-url": {"media_items": [{**MEDIA, "url": "javascript:alert(1)"}]},
    "media-nine-nulls": {"media_items": [None] * 9},
    "tags-nul": {"tags": ["\x00"]},
    "tags-long-emoji": {"tags": ["😀" * 51]},
    "tags-empty": {"tags": [""] * 11},
    "tags-nested": {"tags": [["x"]]},
    "tags-object": {"tags": [{"a": 1}]},
    "tags-sql": {"tags": ["' OR 1=1 --", "%", "_", "\\"]},
    "tags-many": {"tags": [f"t{i}" for i in range(1000)]},
}
PAYLOADS: dict[str, bytes] = {
    "deep-200": b"[" * 200 + b"]" * 200,
    "deep-object": b'{"a": ' * 300 + b"1" + b"}" * 300,
    "nul-key": b'{"\\u0000": 1}',
    "nul-value": b'["\\u0000"]',
    "lone-surrogate": b'{"\\ud800": "\\udc00"}',
    "u64-overflow": b"18446744073709551616",
    "i64-underflow": b"-9223372036854775809",
    "u64-max": b"18446744073709551615",
    "float-overflow": b"1e400",
    "float-underflow": b"1e-400",
    "negative-zero": b"-0.0",
    "ten-thousand-digits": b"9" * 10_000,
    "empty-string": b'""',
    "long-string": b'"' + b"x" * 500_000 + b'"',
    "wide-array": b"[" + b",".join([b"1"] * 50_000) + b"]",
}


@pytest.mark.parametrize("route", [r for r in ROUTES if r.number in (16, 17)], ids=route_id)
@pytest.mark.parametrize("name", list(NESTED))
def test_hostile_post_parts(api: httpx.Client, account: Account, route: Route, name: str) -> None:
    """Hostile media items and tags inside an otherwise valid post: an answer, never a 5xx."""
    value = NESTED[name]
    body = value if isinstance(value, bytes) else json.dumps({"title": "A title", **value}).encode()
    post = envelope(api.post("/posts", json={"title": "mine"}, headers=account.headers))["data"]["id"]
    path = "/posts" if route.number == 16 else f"/posts/{post}"
    response = api.request(route.method, path, content=body, headers=account.headers)
    assert response.status_code < 500, response.text[:300]
    envelope(response)


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_hostile_notification_payload(api: httpx.Client, account: Account, name: str) -> None:
    """Any JSON as a payload: stored and read back, or refused with a 400; never a 5xx."""
    raw = b'{"user_id": %d, "type": "system", "payload": %s}' % (account.id, PAYLOADS[name])
    response = api.post("/notification/send", content=raw, headers=account.headers)
    assert response.status_code in (200, 400), response.text[:300]
    if response.status_code == 200:
        notification_id = envelope(response)["data"]["notification_id"]
        stored = api.get(f"/notification/{notification_id}", headers=account.headers)
        assert stored.status_code == 200, stored.text[:300]
        for listing in (api.get("/notification/feed", headers=account.headers),):
            assert listing.status_code == 200, listing.text[:300]
    else:
        assert envelope(response)["message"] in ("invalid input", "validation failed")
