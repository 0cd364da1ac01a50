"""Attacks on the running stack through the public API: forged and misused tokens, refresh-token
reuse, brute force, other users' resources, hostile input; and the response headers."""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinstack_e2e import tokens
from pinstack_e2e.client import Account, Api, assert_error, data_of, new_password, unique_name

PROBE = "/notification/unread-count"  # any route that needs an access token
TOO_MANY = {"status": 429, "message": "too many requests"}


def probe(api: Api, authorization: str | None) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return api.get(PROBE, headers=headers)


# -- tokens --------------------------------------------------------------------------------------


@pytest.fixture
def victim(new_account) -> Account:
    return new_account("victim")


def test_the_real_access_token_works(api: Api, victim: Account) -> None:
    assert data_of(probe(api, f"Bearer {victim.access}"), 200) == {"count": 0}


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "unauthenticated"),
        ("Bearer invalid_token", "invalid token"),
        ("Bearer invalid-token-12345", "invalid token"),
        ("Bearer a.b.c", "invalid token"),
        ("Basic dXNlcjpwYXNz", "invalid token"),
        ("Bearer", "invalid token"),
        ("Bearer  two  spaces", "invalid token"),
    ],
)
def test_missing_or_malformed_authorization(api: Api, authorization: str | None, message: str) -> None:
    assert_error(probe(api, authorization), 401, message)


def _forged(kind: str, victim: Account, api: Api) -> str:
    header, claims = tokens.parts(victim.access)
    if kind == "alg none":
        return tokens.unsigned(header, claims)
    if kind == "HS256 with the upstream secret":
        return tokens.hs256(header, claims, b"my-secret")
    if kind == "HS256 keyed with the kid":
        return tokens.hs256(header, claims, str(header.get("kid")).encode())
    if kind == "EdDSA with another key":
        key, pem = tokens.new_key()
        api.secrets.update(tokens.pem_body(pem))
        return tokens.eddsa(header, claims, key)
    if kind == "claims changed after signing":
        signed_header, _, signature = victim.access.split(".")
        other = tokens.b64url(tokens.json.dumps({**claims, "user_id": 1, "sub": "1"}).encode())
        return f"{signed_header}.{other}.{signature}"
    if kind == "refresh token as access token":
        return victim.refresh
    raise AssertionError(kind)


@pytest.mark.parametrize(
    "kind",
    [
        "alg none",
        "HS256 with the upstream secret",
        "HS256 keyed with the kid",
        "EdDSA with another key",
        "claims changed after signing",
        "refresh token as access token",
    ],
)
def test_forged_or_misused_tokens_are_refused(api: Api, victim: Account, kind: str) -> None:
    token = _forged(kind, victim, api)
    assert_error(probe(api, f"Bearer {token}"), 401, "unauthenticated")
    # ... and a refresh made of them is refused as well (only a refresh token refreshes).
    if kind != "refresh token as access token":
        assert api.refresh(token).status_code == 401


@pytest.fixture
def stack_key(api: Api, state_dir: Path, victim: Account) -> Any:
    """The dev stack's own signing key (the only way to mint a validly signed, expired token)."""
    path = state_dir / "secrets" / "jwt-ed25519.pem"
    try:
        pem = path.read_bytes()
    except OSError:
        pytest.skip(f"the stack's development key is not readable at {path}")
    api.secrets.update(tokens.pem_body(pem.decode()))
    key = tokens.load_key(pem)
    header, claims = tokens.parts(victim.access)
    if probe(api, f"Bearer {tokens.eddsa(header, claims, key)}").status_code != 200:
        pytest.skip(f"{path} is not the key this gateway trusts (another stack?)")
    return key


def test_an_expired_access_token_is_refused(api: Api, victim: Account, stack_key: Any) -> None:
    header, claims = tokens.parts(victim.access)
    now = int(time.time())
    expired = tokens.eddsa(header, {**claims, "iat": now - 3600, "exp": now - 60}, stack_key)
    assert_error(probe(api, f"Bearer {expired}"), 401, "token expired")
    within_leeway = tokens.eddsa(header, {**claims, "iat": now - 3600, "exp": now - 1}, stack_key)
    assert probe(api, f"Bearer {within_leeway}").status_code == 200, "the contract grants 5 s of leeway"
    no_expiry = {k: v for k, v in claims.items() if k != "exp"}
    assert_error(probe(api, f"Bearer {tokens.eddsa(header, no_expiry, stack_key)}"), 401, "unauthenticated")


def test_reusing_a_rotated_refresh_token_revokes_its_family(api: Api, new_account) -> None:
    user = new_account("family")
    elsewhere = api.login(user.username, user.password)["refresh_token"]  # another device: another family
    second = data_of(api.refresh(user.refresh), 200)
    third = data_of(api.refresh(second["refresh_token"]), 200)
    assert_error(api.refresh(user.refresh), 401, "invalid refresh token")  # replay of a rotated token
    assert_error(api.refresh(third["refresh_token"]), 401, "invalid refresh token")  # the family is gone
    assert data_of(api.refresh(elsewhere), 200)["refresh_token"]  # other sessions live on


def test_login_brute_force_is_throttled(api: Api, new_account) -> None:
    user = new_account("brute")
    for attempt in range(10):
        wrong = {"login": user.username, "password": f"guess-{attempt}-{new_password()}"}
        assert_error(api.post("/auth/login", json=wrong, retry_rate_limited=False), 401, "invalid credentials")
    blocked = api.post("/auth/login", json={"login": user.username, "password": "guess-11"}, retry_rate_limited=False)
    assert blocked.status_code == 429 and blocked.json() == TOO_MANY, blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    bystander = new_account("bystander")  # the limit is per login name: others still sign in
    api.login(bystander.username, bystander.password)


def test_writes_are_throttled_per_user(api: Api, new_account) -> None:
    user = new_account("writer")
    post = api.create_post(user, "Liked a lot")["id"]
    first = api.put(f"/posts/{post}/like", token=user.access, retry_rate_limited=False)
    limit = int(first.headers["ratelimit-limit"])  # the stack's setting (600 on `make up`)
    statuses = [
        api.put(f"/posts/{post}/like", token=user.access, retry_rate_limited=False).status_code
        for _ in range(limit + 2)
    ]
    assert 429 in statuses, f"{limit} writes a minute per user"
    limited = api.put(f"/posts/{post}/like", token=user.access, retry_rate_limited=False)
    assert limited.status_code == 429 and limited.json() == TOO_MANY and limited.headers.get("retry-after")
    other = new_account("other")  # per user: somebody else still writes
    data_of(api.put(f"/posts/{post}/like", token=other.access), 200)


# -- ownership ----------------------------------------------------------------------------------


def test_nobody_writes_to_another_users_resources(api: Api, new_account) -> None:
    owner, intruder = new_account("owner"), new_account("intruder")
    post = api.create_post(owner, "Owner's post", content="Only the owner may change this.", tags=["mine"])
    post_id = post["id"]
    comment = data_of(api.post(f"/posts/{post_id}/comments", token=owner.access, json={"content": "mine too"}), 201)
    note = data_of(
        api.post(
            "/notification/send",
            token=intruder.access,
            json={"user_id": owner.id, "type": "system", "payload": {"x": 1}},
        ),
        200,
    )["notification_id"]
    before_user = data_of(api.get(f"/users/{owner.id}"), 200)
    before_post = data_of(api.get(f"/posts/{post_id}"), 200)

    as_intruder = intruder.access
    assert_error(api.put(f"/posts/{post_id}", token=as_intruder, json={"title": "pwned"}), 403, "forbidden")
    assert_error(api.delete(f"/posts/{post_id}", token=as_intruder), 403, "forbidden")
    assert_error(api.delete(f"/comments/{comment['id']}", token=as_intruder), 403)
    assert_error(api.get(f"/notification/{note}", token=as_intruder), 403, "access to notification denied")
    assert_error(api.put(f"/notification/{note}/read", token=as_intruder), 403, "access to notification denied")
    assert_error(api.delete(f"/notification/{note}", token=as_intruder), 403, "access to notification denied")
    assert_error(api.put("/users", token=as_intruder, json={"id": owner.id, "bio": "pwned"}), 403, "forbidden")
    assert_error(api.delete(f"/users/{owner.id}", token=as_intruder), 403, "forbidden")
    data_of(api.put("/notification/read-all", token=as_intruder), 200)  # marks only the intruder's
    # Routes that act on "the caller" ignore ids smuggled into the body.
    avatar = api.put(
        "/users/avatar",
        token=as_intruder,
        json={"id": owner.id, "user_id": owner.id, "avatar_url": "https://evil.example/x.png"},
    )
    assert avatar.status_code == 200, avatar.text
    stolen = new_password()
    api.secrets.add(stolen)
    smuggled = {"id": owner.id, "user_id": owner.id, "old_password": intruder.password, "new_password": stolen}
    data_of(api.post("/auth/update-password", token=as_intruder, json=smuggled), 200)  # ends the intruder's tokens

    assert data_of(api.get(f"/users/{owner.id}"), 200) == before_user
    assert data_of(api.get(f"/posts/{post_id}"), 200) == before_post
    comments = data_of(api.get(f"/posts/{post_id}/comments"), 200)["comments"]
    assert [c["id"] for c in comments] == [comment["id"]]
    kept = data_of(api.get(f"/notification/{note}", token=owner.access), 200)
    assert kept["is_read"] is False
    assert_error(
        api.post("/auth/login", json={"login": owner.username, "password": stolen}), 401, "invalid credentials"
    )
    api.login(owner.username, owner.password)
    assert data_of(api.get(f"/users/{intruder.id}"), 200)["avatar_url"] == "https://evil.example/x.png"


def test_a_posts_author_may_delete_comments_on_it_but_a_bystander_may_not(api: Api, new_account) -> None:
    author, commenter, bystander = new_account("pauthor"), new_account("commenter"), new_account("bystander")
    post_id = api.create_post(author, "Moderated")["id"]
    first = data_of(api.post(f"/posts/{post_id}/comments", token=commenter.access, json={"content": "one"}), 201)["id"]
    second = data_of(api.post(f"/posts/{post_id}/comments", token=commenter.access, json={"content": "two"}), 201)["id"]
    assert_error(api.delete(f"/comments/{first}", token=bystander.access), 403)
    assert data_of(api.delete(f"/comments/{first}", token=author.access), 200) is None
    assert data_of(api.delete(f"/comments/{second}", token=commenter.access), 200) is None
    assert data_of(api.get(f"/posts/{post_id}/comments"), 200)["comments"] == []


# -- hostile input --------------------------------------------------------------------------------

INJECTIONS = [
    "' OR '1'='1",
    "1; DROP TABLE users;--",
    "admin'--",
    '{"$gt": ""}',
    "../../../../etc/passwd",
    "..%2f..%2f..%2fetc%2fpasswd",
    "line\r\nX-Injected: yes",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/a}",
    "%_%",
    "\u202egnp.exe",
    "null\x00byte",
]


def assert_envelope(response: httpx.Response, *, allow: tuple[int, ...] = ()) -> dict[str, Any]:
    """A 4xx error envelope (or one of the `allow`ed successes), never a 5xx, never non-JSON."""
    ok = response.status_code in allow
    assert ok or 400 <= response.status_code < 500, (
        f"{response.request.method} {response.request.url}: {response.status_code} {response.text[:300]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert "x-injected" not in response.headers
    if response.status_code == 204:
        return {}
    body = response.json()
    assert body.get("status") == response.status_code, body
    if not ok:
        assert isinstance(body.get("message"), str), body
    return dict(body)


def quoted(text: str) -> str:
    return urllib.parse.quote(text, safe="")


@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_are_data_not_code(api: Api, new_account, text: str) -> None:
    user = new_account("inject")
    # Usernames have no character rules (contract §1.4 #1): one made of the string is stored as is.
    name = text[:18] + unique_name("i")
    registered = api.post(
        "/auth/register", json={"username": name, "email": f"{unique_name()}@example.com", "password": new_password()}
    )
    if assert_envelope(registered, allow=(201,))["status"] == 201:
        api.remember_tokens(registered.json()["data"])
        if "/" not in name:  # a `/` (even as %2F) splits the path: such a user is not addressable by name
            assert data_of(api.get(f"/api/v1/users/username/{quoted(name)}"), 200)["username"] == name
        hits = data_of(api.get("/users/search", params={"query": name}), 200)
        assert [u["username"] for u in hits["users"]] == [name] and hits["total"] == 1
    assert_envelope(api.get(f"/api/v1/users/username/{quoted(text)}"), allow=(200,))
    assert_envelope(api.get(f"/api/v1/users/email/{quoted(text)}"))
    assert_envelope(api.get("/users/search", params={"query": text}), allow=(200,))
    assert_envelope(api.post("/auth/login", json={"login": text, "password": text}))
    assert_envelope(api.get("/posts/list", params={"author_id": text}))
    assert_envelope(api.get(f"/api/v1/posts/{quoted(text)}"))
    assert_envelope(api.get(f"/api/v1/relation/{quoted(text)}/followers"))

    created = assert_envelope(
        api.post("/posts", token=user.access, json={"title": text, "content": f"content {text}", "tags": ["ok"]}),
        allow=(201,),
    )
    if created["status"] == 201:  # stored verbatim, read back verbatim
        shown = data_of(api.get(f"/posts/{created['data']['id']}"), 200)
        assert shown["title"] == text and shown["content"] == f"content {text}"
    post_id = api.create_post(user)["id"]
    comment = assert_envelope(
        api.post(f"/posts/{post_id}/comments", token=user.access, json={"content": text}), allow=(201,)
    )
    if comment["status"] == 201:
        assert comment["data"]["content"] == text
    profile = assert_envelope(api.put("/users", token=user.access, json={"id": user.id, "bio": text}), allow=(200,))
    if profile["status"] == 200:
        assert data_of(api.get(f"/users/{user.id}"), 200)["bio"] == text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/../../etc/passwd",
        "/api/v1/users/..%2f..%2f..%2fetc%2fpasswd",
        "/api/v1/posts/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/v1/users/%00",
        "/api/v1/relation/1%0d%0aX-Injected:%20yes/followers",
        "/api/v1/nope",
        "/api/v1/users/99999999999999999999999",
    ],
)
def test_odd_paths_get_an_error_envelope(api: Api, path: str) -> None:
    response = api.http.get(httpx.URL(api.base_url + path))
    assert_envelope(response)
    assert "root:" not in response.text


BODIES: list[tuple[str, bytes]] = [
    ("empty", b""),
    ("not json", b"{'single': 'quotes'}"),
    ("truncated", b'{"title": "x'),
    ("array", b"[]"),
    ("null", b"null"),
    ("string", b'"title"'),
    ("number", b"42"),
    ("nested deeply", b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("huge number", b'{"title": "x", "media_items": [{"url": "https://x.y/a", "type": "image", "position": 1e309}]}'),
    ("int overflow", b'{"followee_id": 99999999999999999999999}'),
    ("wrong types", b'{"title": {"$ne": null}, "tags": "notalist"}'),
]


@pytest.mark.parametrize(("name", "body"), BODIES, ids=[name for name, _ in BODIES])
def test_malformed_bodies_are_refused_cleanly(api: Api, new_account, name: str, body: bytes) -> None:
    user = new_account("malformed")
    for path in ("/posts", "/relation/follow", "/auth/register", "/auth/login"):
        response = api.post(path, token=user.access, content=body, headers={"Content-Type": "application/json"})
        assert_envelope(response)


def test_invalid_utf8_is_replaced_or_refused_never_a_crash(api: Api, new_account) -> None:
    user = new_account("utf8")
    # Go's decoder (the contract's reference) turns invalid bytes into U+FFFD; a 400 is fine too.
    response = api.post(
        "/posts",
        token=user.access,
        content=b'{"title": "bad \xff\xfe bytes"}',
        headers={"Content-Type": "application/json"},
    )
    body = assert_envelope(response, allow=(201,))
    if body["status"] == 201:
        assert body["data"]["title"] == "bad \ufffd\ufffd bytes"


@pytest.mark.parametrize("path", ["/auth/register", "/auth/login", "/posts", "/notification/send"])
def test_oversized_bodies_are_refused_cleanly(api: Api, new_account, path: str) -> None:
    user = new_account("big")
    blob = "A" * (1024 * 1024 + 1)
    bodies = {
        "/auth/register": {
            "username": unique_name(),
            "email": f"{unique_name()}@example.com",
            "password": new_password(),
            "bio": blob,
        },
        "/auth/login": {"login": user.username, "password": blob},
        "/posts": {"title": "big", "content": blob},
        "/notification/send": {"user_id": user.id, "type": "system", "payload": {"blob": blob}},
    }
    response = api.post(path, token=user.access, json=bodies[path])
    assert_envelope(response)
    assert response.status_code in (400, 413), response.text[:200]


# -- headers -------------------------------------------------------------------------------------


def test_security_headers(api: Api, new_account) -> None:
    user = new_account("headers")
    responses = {
        "public": api.get(f"/users/{user.id}"),
        "authenticated": api.get(PROBE, token=user.access),
        "error": api.get("/users/0"),
        "not found": api.get("/api/v1/definitely/not/here"),
    }
    for name, response in responses.items():
        headers = response.headers
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("x-frame-options", "").upper() == "DENY", name
        assert headers.get("referrer-policy"), name
        assert headers.get("content-security-policy"), name
    assert "no-store" in responses["authenticated"].headers.get("cache-control", "")
