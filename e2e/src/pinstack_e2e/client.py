"""A small client of the public API (`/api/v1` on the gateway), as an app would use it.

Every username is unique per run (`<prefix>_<run id>_<n>`), so the tier can run again and again
against the same long-lived stack. Every password and token the client handles is remembered in
`Api.secrets`, so the log-hygiene test can prove none of them reached a log file.
"""

from __future__ import annotations

import itertools
import os
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from pinstack_e2e.wait import eventually

RUN_ID = secrets.token_hex(4)
_counter = itertools.count(1)
API_PREFIX = "/api/v1"
RATE_LIMIT_PATIENCE_SECONDS = 90.0


def gateway_url() -> str:
    """The gateway `make up` started (`python3 scripts/stack.py env` exports it)."""
    return os.environ.get("PINSTACK_GATEWAY_URL", "http://127.0.0.1:8080").rstrip("/")


def unique_name(prefix: str = "e2e") -> str:
    """A username (3-32 chars of `[A-Za-z0-9_]`) nobody else in this or any other run has."""
    return f"{prefix[:10]}_{RUN_ID}_{next(_counter)}"


USED_SECRETS: set[str] = set()
"""Every password, token and key the tier handled in this process (the log-hygiene test reads it)."""


def new_password() -> str:
    """Distinctive (`Pw-` and 32 hex digits) so finding it in a log file cannot be a coincidence."""
    password = f"Pw-{uuid.uuid4().hex}"
    USED_SECRETS.add(password)
    return password


@dataclass
class Account:
    id: int
    username: str
    email: str
    password: str
    access: str
    refresh: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access}"}


@dataclass
class Api:
    base_url: str
    secrets: set[str] = field(default_factory=lambda: USED_SECRETS)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=self.base_url.rstrip("/"), timeout=20.0)

    def close(self) -> None:
        self.http.close()

    # -- raw requests -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        retry_rate_limited: bool = True,
    ) -> httpx.Response:
        """One call under `/api/v1` (or an absolute path such as `/healthz`).

        A 429 is waited out (honouring `Retry-After`) unless `retry_rate_limited` is false: a
        rate-limited request was not processed, so sending it again is safe.
        """
        url = (
            path
            if path.startswith(("/api/", "/healthz", "/readyz", "/openapi", "/swagger", "/docs"))
            else API_PREFIX + path
        )
        all_headers = dict(headers or {})
        if token is not None:
            all_headers["Authorization"] = f"Bearer {token}"

        def send() -> httpx.Response:
            return self.http.request(method, url, json=json, content=content, params=params, headers=all_headers)

        if not retry_rate_limited:
            return send()
        return eventually(
            send,
            lambda r: r.status_code != 429,
            what=f"{method} {url} to get past the rate limit",
            timeout=RATE_LIMIT_PATIENCE_SECONDS,
            min_delay=retry_after,
        )

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    # -- auth flows ---------------------------------------------------------------------------

    def remember_tokens(self, pair: dict[str, Any]) -> dict[str, Any]:
        for key in ("access_token", "refresh_token"):
            if isinstance(pair.get(key), str):
                self.secrets.add(pair[key])
        return pair

    def register(self, prefix: str = "e2e", *, password: str | None = None, **extra: Any) -> Account:
        """Sign up a fresh user; returns it with its id and first token pair."""
        username = unique_name(prefix)
        email = f"{username}@example.com".lower()
        password = password or new_password()
        self.secrets.add(password)
        body = {"username": username, "email": email, "password": password, "full_name": f"User {username}", **extra}
        pair = self.remember_tokens(data_of(self.post("/auth/register", json=body), 201))
        user = data_of(self.get(f"/users/username/{username}"), 200)
        return Account(user["id"], username, email, password, pair["access_token"], pair["refresh_token"])

    def login(self, login: str, password: str) -> dict[str, Any]:
        self.secrets.add(password)
        return self.remember_tokens(data_of(self.post("/auth/login", json={"login": login, "password": password}), 200))

    def relogin(self, account: Account) -> Account:
        pair = self.login(account.username, account.password)
        account.access, account.refresh = pair["access_token"], pair["refresh_token"]
        return account

    def refresh(self, refresh_token: str, **kw: Any) -> httpx.Response:
        response = self.post("/auth/refresh", json={"refresh_token": refresh_token}, **kw)
        if response.status_code == 200:
            self.remember_tokens(response.json()["data"])
        return response

    # -- the few resources journeys create again and again ---------------------------------------

    def create_post(
        self, author: Account, title: str = "A post", *, likeable: bool = True, **body: Any
    ) -> dict[str, Any]:
        """Create a post; with `likeable`, also wait until the activity service (which learns of
        posts from `post-events`) accepts likes and comments on it."""
        body.setdefault("content", "Some content long enough to pass every rule.")
        post = data_of(self.post("/posts", token=author.access, json={"title": title, **body}), 201)
        if likeable:
            eventually(
                lambda: self.get(f"/posts/{post['id']}/likes"),
                lambda r: r.status_code == 200,
                what=f"post {post['id']} to reach the activity service",
            )
        return dict(post)

    def follow(self, follower: Account, followee: Account) -> None:
        data_of(self.post("/relation/follow", token=follower.access, json={"followee_id": followee.id}), 200)

    def notifications(self, account: Account, limit: int = 100) -> list[dict[str, Any]]:
        page = data_of(self.get("/notification/feed", token=account.access, params={"limit": limit}), 200)
        return list(page["notifications"])


def retry_after(response: httpx.Response) -> float:
    """Seconds a 429 asks the client to wait (0 when absent or not a number)."""
    if response.status_code != 429:
        return 0.0
    try:
        return float(response.headers.get("retry-after", "1"))
    except ValueError:
        return 1.0


def data_of(response: httpx.Response, status: int) -> Any:
    """Assert a success envelope with `status` and return its `data` (None when absent)."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: expected {status}, got {response.status_code} {response.text[:500]}"
    )
    if status == 204:
        return None
    body = response.json()
    assert body.get("status") == status, body
    return body.get("data")


def assert_error(response: httpx.Response, status: int, message: str | None = None) -> dict[str, Any]:
    """Assert an error envelope `{"status": status, "message": message}` (any message when None)."""
    assert response.status_code == status, (
        f"{response.request.method} {response.request.url}: expected {status}, got {response.status_code} {response.text[:500]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    body = response.json()
    assert body.get("status") == status, body
    assert isinstance(body.get("message"), str), body
    if message is not None:
        assert body["message"] == message, body
    return dict(body)
