"""What the gateway contract tests share: the route table (contract §1.2, routes 1-29), the
envelope assertions (§1.1, §1.3) and the making of accounts and tokens."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinstack_testing import spawn_service

PASSWORD = "s3cret-pass"  # 11 characters: valid for every password rule


@dataclass(frozen=True)
class Stack:
    """The servers of one test worker (conftest's `stack`)."""

    gateway: str
    urls: dict[str, str]  # backend name → base URL
    databases: dict[str, str]  # backend name → DATABASE_URL
    topic_prefix: str
    gateway_env: dict[str, str]  # what the gateway was started with (tests start variants of it)


@contextmanager
def second_gateway(stack: Stack, tmp_path_factory: pytest.TempPathFactory, **overrides: str) -> Iterator[str]:
    """Another replica of the stack's gateway (the same Redis keys), or a variant of it."""
    env = {**stack.gateway_env, **overrides}
    with spawn_service("pinstack_gateway.main:create_app", env, log_dir=tmp_path_factory.mktemp("logs")) as url:
        yield url


@dataclass(frozen=True)
class Route:
    number: int
    method: str
    path: str  # the contract's template under /api/v1
    jwt: bool
    body: bool

    def url(self, **params: str) -> str:
        """The path with its parameters filled in; one not named takes the value of `id`."""
        return re.sub(r"\{(\w+)\}", lambda m: params.get(m.group(1), params.get("id", m.group(0))), self.path)


ROUTES = [
    Route(1, "POST", "/auth/register", jwt=False, body=True),
    Route(2, "POST", "/auth/login", jwt=False, body=True),
    Route(3, "POST", "/auth/refresh", jwt=False, body=True),
    Route(4, "POST", "/auth/logout", jwt=False, body=True),
    Route(5, "POST", "/auth/update-password", jwt=True, body=True),
    Route(6, "GET", "/users/{id}", jwt=False, body=False),
    Route(7, "GET", "/users/username/{username}", jwt=False, body=False),
    Route(8, "GET", "/users/email/{email}", jwt=False, body=False),
    Route(9, "GET", "/users/search", jwt=False, body=False),
    Route(10, "POST", "/users", jwt=True, body=True),
    Route(11, "PUT", "/users", jwt=True, body=True),
    Route(12, "DELETE", "/users/{id}", jwt=True, body=False),
    Route(13, "PUT", "/users/avatar", jwt=True, body=True),
    Route(14, "GET", "/posts/list", jwt=False, body=False),
    Route(15, "GET", "/posts/{id}", jwt=False, body=False),
    Route(16, "POST", "/posts", jwt=True, body=True),
    Route(17, "PUT", "/posts/{id}", jwt=True, body=True),
    Route(18, "DELETE", "/posts/{id}", jwt=True, body=False),
    Route(19, "POST", "/relation/follow", jwt=True, body=True),
    Route(20, "POST", "/relation/unfollow", jwt=True, body=True),
    Route(21, "GET", "/relation/{user_id}/followers", jwt=False, body=False),
    Route(22, "GET", "/relation/{user_id}/followees", jwt=False, body=False),
    Route(23, "GET", "/notification/feed", jwt=True, body=False),
    Route(24, "GET", "/notification/unread-count", jwt=True, body=False),
    Route(25, "GET", "/notification/{notification_id}", jwt=True, body=False),
    Route(26, "PUT", "/notification/{notification_id}/read", jwt=True, body=False),
    Route(27, "PUT", "/notification/read-all", jwt=True, body=False),
    Route(28, "DELETE", "/notification/{notification_id}", jwt=True, body=False),
    Route(29, "POST", "/notification/send", jwt=True, body=True),
]
JWT_ROUTES = [r for r in ROUTES if r.jwt]
BODY_ROUTES = [r for r in ROUTES if r.body]


def route_id(route: Route) -> str:
    return f"{route.number}-{route.method}-{route.path}"


# --- the envelope ---------------------------------------------------------------------------

TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
# Notifications: Go's time.Time JSON, fractional seconds with trailing zeros trimmed.
FRACTIONAL_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{0,8}[1-9])?Z")
USER_KEYS = {"id", "username", "email", "full_name", "bio", "avatar_url", "created_at", "updated_at"}
REQUIRED_USER_KEYS = {"id", "username", "email", "created_at", "updated_at"}


def envelope(response: httpx.Response) -> dict[str, Any]:
    """The body of any gateway answer: a JSON object whose `status` is the HTTP status."""
    assert response.headers.get("content-type", "").startswith("application/json"), (
        response.status_code,
        response.headers.get("content-type"),
        response.text[:300],
    )
    body = response.json()
    assert isinstance(body, dict), response.text[:300]
    assert body.get("status") == response.status_code, response.text[:300]
    return body


def cache_hits(server: httpx.Client) -> float:
    """How many answers the gateway's response cache gave (its /metrics)."""
    for line in server.get("/metrics").text.splitlines():
        if line.startswith('cache_requests_total{cache="gateway",result="hit"}'):
            return float(line.rpartition(" ")[2])
    return 0.0


def assert_error(response: httpx.Response, status: int, message: str) -> None:
    body = envelope(response)
    assert (response.status_code, body) == (status, {"status": status, "message": message}), response.text[:300]


def data_of(response: httpx.Response, status: int = 200) -> Any:
    """The `data` of a success envelope `{"status": status, "data": ...}` (and nothing else)."""
    assert response.status_code == status, response.text[:300]
    body = envelope(response)
    assert set(body) == {"status", "data"}, body
    return body["data"]


def assert_status_only(response: httpx.Response, status: int = 200) -> None:
    """A success without payload: exactly `{"status": status}`, no `data` key."""
    assert response.status_code == status, response.text[:300]
    assert envelope(response) == {"status": status}


def assert_no_content(response: httpx.Response) -> None:
    """204: no body at all (the content type is still JSON, as upstream sends it)."""
    assert response.status_code == 204, response.text[:300]
    assert response.content == b""
    assert response.headers.get("content-type", "").startswith("application/json")


def assert_timestamp(value: object) -> datetime:
    """RFC 3339, second precision, UTC with a `Z` suffix, and recent."""
    assert isinstance(value, str) and TIMESTAMP.fullmatch(value), value
    moment = datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5), value
    return moment


def assert_fractional_timestamp(value: object) -> datetime:
    """RFC 3339 with fractional seconds (no trailing zeros), UTC with a `Z` suffix, and recent."""
    assert isinstance(value, str) and FRACTIONAL_TIMESTAMP.fullmatch(value), value
    moment = datetime.fromisoformat(value)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=5), value
    return moment


def assert_user(user: Any, **expected: object) -> dict[str, Any]:
    """The contract's user object; `expected` values of None must be omitted, others equal."""
    assert isinstance(user, dict), user
    assert REQUIRED_USER_KEYS <= set(user) <= USER_KEYS, sorted(user)
    assert type(user["id"]) is int and user["id"] >= 1, user
    assert all(isinstance(user[k], str) for k in user.keys() - {"id"}), user  # never null
    created = assert_timestamp(user["created_at"])
    assert assert_timestamp(user["updated_at"]) >= created
    for key, value in expected.items():
        if value is None:
            assert key not in user, user
        else:
            assert user[key] == value, (key, user)
    assert "password" not in json.dumps(user)
    return user


def assert_token_pair(data: Any) -> dict[str, str]:
    assert isinstance(data, dict) and set(data) == {"access_token", "refresh_token"}, data
    for token in data.values():
        assert isinstance(token, str) and token.count(".") == 2, token
    assert data["access_token"] != data["refresh_token"]
    return data


# --- accounts ---------------------------------------------------------------------------------


def unique_name(prefix: str = "u") -> str:
    return f"{prefix}{uuid.uuid4().hex[:16]}"


@dataclass(frozen=True)
class Account:
    id: int
    username: str
    email: str
    password: str
    access: str
    refresh: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


def claims_of(token: str) -> dict[str, Any]:
    """The payload of a JWT, unverified (tests only read what the server signed)."""
    return jwt.decode(token, options={"verify_signature": False})


# --- tokens -----------------------------------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def thumbprint(key: Ed25519PrivateKey) -> str:
    """RFC 7638 JWK thumbprint of the public key: the `kid` the auth service publishes."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    return _b64(hashlib.sha256(json.dumps(members, sort_keys=True, separators=(",", ":")).encode()).digest())


def pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def mint(
    key: Ed25519PrivateKey,
    user_id: int,
    *,
    typ: str = "access",
    expires_in: int = 900,
    kid: str | None = None,
    drop: tuple[str, ...] = (),
    **extra: Any,
) -> str:
    """A token shaped like the auth service's (iss, sub, user_id, typ, iat, exp, jti)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "pinstack",
        "sub": str(user_id),
        "user_id": user_id,
        "typ": typ,
        "jti": str(uuid.uuid4()),
        "iat": now,
        "exp": now + expires_in,
        **extra,
    }
    for name in drop:
        claims.pop(name, None)
    return jwt.encode(claims, key, algorithm="EdDSA", headers={"kid": kid or thumbprint(key)})


def ghost(key: Ed25519PrivateKey) -> tuple[int, dict[str, str]]:
    """The id and bearer headers of a well-signed, unexpired token of an account that never
    existed: how the services' `user not found` answers to a caller are reached, now that a
    deleted account's own token is refused at the gateway."""
    user_id = 2**62 + uuid.uuid4().int % 2**40
    return user_id, {"Authorization": f"Bearer {mint(key, user_id)}"}
