"""Contract §1.1 (envelope, body decoding, the auth middleware) and routes 1-5 of §1.4."""

from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_contract import (
    JWT_ROUTES,
    PASSWORD,
    Account,
    Route,
    assert_error,
    assert_status_only,
    assert_token_pair,
    assert_user,
    claims_of,
    data_of,
    ghost,
    mint,
    route_id,
    thumbprint,
    unique_name,
)

pytestmark = pytest.mark.contract


def new_user(**fields: object) -> dict[str, object]:
    name = unique_name()
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **fields}


def call(api: httpx.Client, route: Route, headers: dict[str, str], account: Account | None = None) -> httpx.Response:
    """Call a JWT route with a body and path that would otherwise succeed (or fail later)."""
    user_id = str(account.id) if account else "1"
    body = {
        5: {"old_password": PASSWORD, "new_password": PASSWORD + "x"},
        10: new_user(),
        11: {"id": int(user_id), "bio": "hello there"},
        13: {"avatar_url": "https://picsum.photos/300/300"},
        16: {"title": "A post", "content": "written by someone"},
        17: {"title": "A new title"},
        19: {"followee_id": int(user_id)},
        20: {"followee_id": int(user_id)},
        29: {"user_id": int(user_id), "type": "system", "payload": {"text": "hello"}},
    }.get(route.number)
    return api.request(route.method, route.url(id=user_id), json=body, headers=headers)


class TestEnvelope:
    def test_unknown_route_is_a_404_envelope(self, server: httpx.Client) -> None:
        for path in ("/api/v1/nope", "/api/v2/users/1", "/api/v1/users/username/a/b"):
            assert_error(server.get(path), 404, "not found")

    def test_wrong_method_is_a_405_envelope_with_allow(self, server: httpx.Client) -> None:
        response = server.get("/api/v1/auth/login")
        assert_error(response, 405, "method not allowed")
        assert response.headers["allow"] == "POST"

    def test_405_allow_lists_every_method_of_the_path(self, server: httpx.Client) -> None:
        response = server.patch("/api/v1/users", json={})
        assert_error(response, 405, "method not allowed")
        assert {m.strip() for m in response.headers["allow"].split(",")} == {"POST", "PUT"}

    def test_trailing_slash_is_the_same_route(self, api: httpx.Client, account: Account) -> None:
        created = data_of(api.post("/users/", json=new_user(full_name="Slash Ed"), headers=account.headers), 201)
        assert_user(created, full_name="Slash Ed")

    def test_content_type_of_the_request_is_not_checked(self, api: httpx.Client) -> None:
        body = json.dumps(new_user()).encode()
        response = api.post("/auth/register", content=body, headers={"content-type": "text/plain"})
        assert_token_pair(data_of(response, 201))


class TestBodyDecoding:
    """Go's encoding/json semantics (§1.1), observed on POST /auth/register."""

    @pytest.mark.parametrize(
        "raw",
        [b"", b"   ", b"{", b"{'username': 'x'}", b"nope", b"[]", b'"text"', b"42", b"true", b"\xef\xbb\xbf{}"],
        ids=["empty", "blank", "truncated", "single-quotes", "bare-word", "array", "string", "number", "bool", "bom"],
    )
    def test_undecodable_body_is_invalid_input(self, api: httpx.Client, raw: bytes) -> None:
        assert_error(api.post("/auth/register", content=raw), 400, "invalid input")

    @pytest.mark.parametrize(
        "field, value",
        [("username", 123), ("email", ["a@b.co"]), ("password", {"x": 1}), ("full_name", True), ("bio", 1.5)],
    )
    def test_wrong_json_type_is_invalid_input(self, api: httpx.Client, field: str, value: object) -> None:
        assert_error(api.post("/auth/register", json=new_user(**{field: value})), 400, "invalid input")

    def test_keys_match_case_insensitively(self, api: httpx.Client) -> None:
        user = new_user()
        body = {"USERNAME": user["username"], "Email": user["email"], "passWORD": user["password"]}
        assert_token_pair(data_of(api.post("/auth/register", json=body), 201))

    def test_unknown_keys_and_trailing_bytes_are_ignored(self, api: httpx.Client) -> None:
        raw = json.dumps({**new_user(), "role": "admin", "extra": [1, 2]}).encode() + b' {"garbage"'
        assert_token_pair(data_of(api.post("/auth/register", content=raw), 201))

    def test_null_is_the_zero_value(self, api: httpx.Client) -> None:
        assert_error(api.post("/auth/register", json=new_user(username=None)), 400, "validation failed")
        assert_error(api.post("/auth/register", content=b"null"), 400, "validation failed")
        assert_token_pair(data_of(api.post("/auth/register", json=new_user(full_name=None, bio=None)), 201))

    def test_decoding_errors_come_before_rule_violations(self, api: httpx.Client) -> None:
        body = new_user(username="ab", email="not-an-email", password=123)
        assert_error(api.post("/auth/register", json=body), 400, "invalid input")

    def test_lengths_count_code_points_not_bytes(self, api: httpx.Client) -> None:
        tail = uuid.uuid4().hex[:6]
        ok = new_user(username="é" * 26 + tail)  # 32 code points, 58 bytes
        assert_token_pair(data_of(api.post("/auth/register", json=ok), 201))
        assert_error(api.post("/auth/register", json=new_user(username="😀😀")), 400, "validation failed")
        assert_error(
            api.post("/auth/register", json=new_user(password="😀" * 7)),  # 28 bytes, 7 code points
            400,
            "validation failed",
        )


class TestAuthMiddleware:
    """§1.1: the checks every JWT route makes, in order, before anything else."""

    @pytest.fixture(params=JWT_ROUTES, ids=route_id)
    def route(self, request: pytest.FixtureRequest) -> Route:
        return request.param

    @pytest.mark.parametrize("headers", [{}, {"Authorization": ""}], ids=["no-header", "empty-header"])
    def test_missing_header_is_unauthenticated(self, api: httpx.Client, route: Route, headers: dict) -> None:
        assert_error(call(api, route, headers), 401, "unauthenticated")

    @pytest.mark.parametrize(
        "value",
        [
            "Bearer invalid_token",
            "Bearer invalid_token_12345",
            "Bearer invalid-token-12345",
            "Bearer a.b.c",
            "Bearer x.y",
            "Token x",
            "Bearer a b",
            "Bearer",
            "bearer {token}",
            "Basic {token}",
            "Bearer  {token}",
        ],
    )
    def test_malformed_is_invalid_token(self, api: httpx.Client, route: Route, account: Account, value: str) -> None:
        headers = {"Authorization": value.format(token=account.access)}
        assert_error(call(api, route, headers, account), 401, "invalid token")

    def test_expired_token(
        self, api: httpx.Client, route: Route, account: Account, signing_key: Ed25519PrivateKey
    ) -> None:
        token = mint(signing_key, account.id, expires_in=-60)
        assert_error(call(api, route, {"Authorization": f"Bearer {token}"}, account), 401, "token expired")

    @pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # upstream's `my-secret`
    @pytest.mark.parametrize(
        "forge",
        [
            "other-key-same-kid",
            "other-key-own-kid",
            "alg-none",
            "hs256-my-secret",
            "upstream-hs256-shape",
            "refresh-token",
            "tampered-payload",
            "expired-and-forged",
            "no-exp",
            "wrong-issuer",
            "no-typ",
        ],
    )
    def test_other_failures_are_unauthenticated(
        self, api: httpx.Client, route: Route, account: Account, signing_key: Ed25519PrivateKey, forge: str
    ) -> None:
        other = Ed25519PrivateKey.generate()
        now = int(time.time())
        claims = {"iss": "pinstack", "sub": str(account.id), "user_id": account.id, "typ": "access", "iat": now}
        token = {
            "other-key-same-kid": lambda: mint(other, account.id, kid=thumbprint(signing_key)),
            "other-key-own-kid": lambda: mint(other, account.id),
            "alg-none": lambda: jwt.encode(
                {**claims, "exp": now + 600},
                None,  # type: ignore[arg-type]  # an unsigned token
                algorithm="none",
                headers={"kid": thumbprint(signing_key)},
            ),
            "hs256-my-secret": lambda: jwt.encode(
                {**claims, "exp": now + 600}, "my-secret", algorithm="HS256", headers={"kid": thumbprint(signing_key)}
            ),
            "upstream-hs256-shape": lambda: jwt.encode(
                {"user_id": account.id, "jti": "", "iat": now, "exp": now + 600}, "my-secret", algorithm="HS256"
            ),
            "refresh-token": lambda: account.refresh,
            "tampered-payload": lambda: _tamper(account.access),
            "expired-and-forged": lambda: mint(other, account.id, kid=thumbprint(signing_key), expires_in=-60),
            "no-exp": lambda: mint(signing_key, account.id, drop=("exp",)),
            "wrong-issuer": lambda: mint(signing_key, account.id, iss="evil"),
            "no-typ": lambda: mint(signing_key, account.id, drop=("typ",)),
        }[forge]()
        assert_error(call(api, route, {"Authorization": f"Bearer {token}"}, account), 401, "unauthenticated")

    def test_auth_runs_before_the_body_is_read(self, api: httpx.Client, route: Route) -> None:
        response = api.request(route.method, route.url(id="abc"), content=b"{not json")
        assert_error(response, 401, "unauthenticated")

    def test_a_minted_access_token_is_accepted(
        self, api: httpx.Client, account: Account, signing_key: Ed25519PrivateKey
    ) -> None:
        """The test key really is the service key: the same token, unexpired, works."""
        token = mint(signing_key, account.id, expires_in=-2)  # within the 5 s leeway
        response = api.put("/users/avatar", json={"avatar_url": "https://x.io/a.png"}, headers=_bearer(token))
        assert_status_only(response)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tamper(token: str) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["user_id"] += 1
    claims["sub"] = str(claims["user_id"])
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


class TestRegister:
    """Route 1: POST /auth/register."""

    def test_success_is_201_with_a_token_pair(self, api: httpx.Client) -> None:
        body = new_user()
        pair = assert_token_pair(data_of(api.post("/auth/register", json=body), 201))
        user_id = claims_of(pair["access_token"])["user_id"]
        assert_user(data_of(api.get(f"/users/{user_id}")), username=body["username"], email=body["email"])
        assert_user(data_of(api.get(f"/users/{user_id}")), full_name=None, bio=None, avatar_url=None)

    def test_optional_profile_fields_are_stored(self, api: httpx.Client) -> None:
        body = new_user(full_name="Ada Lovelace 😀", bio="Counts in 🧮 code points", avatar_url="https://x.io/a.png")
        pair = assert_token_pair(data_of(api.post("/auth/register", json=body), 201))
        user = data_of(api.get(f"/users/{claims_of(pair['access_token'])['user_id']}"))
        assert_user(user, full_name=body["full_name"], bio=body["bio"], avatar_url=body["avatar_url"])

    @pytest.mark.parametrize(
        "fields",
        [
            {"username": ""},
            {"username": "ab"},
            {"username": "a" * 33},
            {"email": ""},
            {"email": "not-an-email"},
            {"email": "a@b"},
            {"password": ""},
            {"password": "12345"},
            {"password": "1234567"},  # decision: new passwords need 8 (upstream answered 500)
            {"full_name": "x" * 101},
            {"bio": "x" * 501},
            {"avatar_url": "not-a-url"},
            {"avatar_url": ""},
        ],
        ids=lambda f: f"{next(iter(f))}={str(next(iter(f.values())))[:12]!r}",
    )
    def test_rule_violations_are_validation_failed(self, api: httpx.Client, fields: dict) -> None:
        assert_error(api.post("/auth/register", json=new_user(**fields)), 400, "validation failed")

    @pytest.mark.parametrize("missing", ["username", "email", "password"])
    def test_missing_required_field(self, api: httpx.Client, missing: str) -> None:
        body = new_user()
        del body[missing]
        assert_error(api.post("/auth/register", json=body), 400, "validation failed")

    def test_boundaries_are_accepted(self, api: httpx.Client) -> None:
        tail = uuid.uuid4().hex
        for username in (tail[:3], ("b" * 32 + tail)[-32:]):
            body = new_user(username=username, password="12345678", full_name="x" * 100, bio="y" * 500)
            assert_token_pair(data_of(api.post("/auth/register", json=body), 201))

    def test_username_taken(self, api: httpx.Client, account: Account) -> None:
        for username in (account.username, account.username.upper()):  # decision: case-insensitive
            body = new_user(username=username)
            assert_error(api.post("/auth/register", json=body), 409, "username already exists")

    def test_rules_are_checked_before_conflicts(self, api: httpx.Client, account: Account) -> None:
        body = new_user(username=account.username, password="short")
        assert_error(api.post("/auth/register", json=body), 400, "validation failed")

    def test_email_taken(self, api: httpx.Client, account: Account) -> None:
        for email in (account.email, account.email.upper()):  # decision: case-insensitive
            assert_error(api.post("/auth/register", json=new_user(email=email)), 409, "email already exists")


class TestLogin:
    """Route 2: POST /auth/login."""

    def test_by_username_and_by_email(self, api: httpx.Client, account: Account) -> None:
        for login in (account.username, account.email):
            pair = assert_token_pair(data_of(api.post("/auth/login", json={"login": login, "password": PASSWORD})))
            assert claims_of(pair["access_token"])["user_id"] == account.id
            assert_status_only(
                api.put("/users/avatar", json={"avatar_url": "https://a.io"}, headers=_bearer(pair["access_token"]))
            )

    def test_user_not_found(self, api: httpx.Client) -> None:
        for login in (unique_name(), f"{unique_name()}@example.com"):
            assert_error(api.post("/auth/login", json={"login": login, "password": PASSWORD}), 404, "user not found")

    def test_wrong_password(self, api: httpx.Client, account: Account) -> None:
        for password in ("wrong-password", "123456"):  # 6 is enough to be checked
            response = api.post("/auth/login", json={"login": account.username, "password": password})
            assert_error(response, 401, "invalid credentials")

    @pytest.mark.parametrize(
        "body",
        [{}, {"login": "", "password": PASSWORD}, {"login": "someone"}, {"login": "someone", "password": "12345"}],
        ids=["empty", "empty-login", "no-password", "short-password"],
    )
    def test_validation_failed(self, api: httpx.Client, body: dict) -> None:
        assert_error(api.post("/auth/login", json=body), 400, "validation failed")

    @pytest.mark.parametrize(
        "body", [b"[]", b'{"login": 1, "password": "123456"}', b'{"login": "a", "password": 123456}']
    )
    def test_invalid_input(self, api: httpx.Client, body: bytes) -> None:
        assert_error(api.post("/auth/login", content=body), 400, "invalid input")


class TestRefresh:
    """Route 3: POST /auth/refresh, with rotation and reuse detection."""

    def test_rotation(self, api: httpx.Client, account: Account) -> None:
        pair = assert_token_pair(data_of(api.post("/auth/refresh", json={"refresh_token": account.refresh})))
        assert pair["refresh_token"] != account.refresh
        assert claims_of(pair["access_token"])["user_id"] == account.id
        avatar = {"avatar_url": "https://a.io/p.png"}
        assert_status_only(api.put("/users/avatar", json=avatar, headers=_bearer(pair["access_token"])))
        # the successor rotates again; the rotated one is dead
        assert_token_pair(data_of(api.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})))

    def test_reuse_of_a_rotated_token_revokes_the_family(self, api: httpx.Client, account: Account) -> None:
        first = data_of(api.post("/auth/refresh", json={"refresh_token": account.refresh}))
        second = data_of(api.post("/auth/refresh", json={"refresh_token": first["refresh_token"]}))
        reused = api.post("/auth/refresh", json={"refresh_token": account.refresh})
        assert_error(reused, 401, "invalid refresh token")
        # the newest token of that login is revoked too
        latest = api.post("/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert_error(latest, 401, "invalid refresh token")

    def test_reuse_does_not_touch_other_sessions(self, api: httpx.Client, account: Account) -> None:
        other = data_of(api.post("/auth/login", json={"login": account.username, "password": PASSWORD}))
        data_of(api.post("/auth/refresh", json={"refresh_token": account.refresh}))
        assert_error(api.post("/auth/refresh", json={"refresh_token": account.refresh}), 401, "invalid refresh token")
        assert_token_pair(data_of(api.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})))

    def test_invalid_refresh_tokens(self, api: httpx.Client, account: Account, signing_key: Ed25519PrivateKey) -> None:
        forged = Ed25519PrivateKey.generate()
        for token in (
            "garbage",
            "a.b.c",
            account.access,  # an access token is not a refresh token
            mint(forged, account.id, typ="refresh", kid=thumbprint(signing_key)),
            mint(signing_key, account.id, typ="refresh"),  # well signed, but never issued (unknown jti)
            mint(signing_key, account.id, typ="refresh", jti="not-a-uuid"),
        ):
            assert_error(api.post("/auth/refresh", json={"refresh_token": token}), 401, "invalid refresh token")

    def test_expired_refresh_token_is_unauthenticated(
        self, api: httpx.Client, account: Account, signing_key: Ed25519PrivateKey
    ) -> None:
        token = mint(signing_key, account.id, typ="refresh", expires_in=-60)
        assert_error(api.post("/auth/refresh", json={"refresh_token": token}), 401, "unauthenticated")

    def test_deleted_user(self, api: httpx.Client, account: Account) -> None:
        """Upstream answered 404 `user not found`; the session ended with its account."""
        assert api.delete(f"/users/{account.id}", headers=account.headers).status_code == 204
        response = api.post("/auth/refresh", json={"refresh_token": account.refresh})
        assert_error(response, 401, "invalid refresh token")

    def test_body_errors(self, api: httpx.Client) -> None:
        assert_error(api.post("/auth/refresh", json={}), 400, "validation failed")
        assert_error(api.post("/auth/refresh", json={"refresh_token": ""}), 400, "validation failed")
        assert_error(api.post("/auth/refresh", json={"refresh_token": 1}), 400, "invalid input")
        assert_error(api.post("/auth/refresh", content=b""), 400, "invalid input")


class TestLogout:
    """Route 4: POST /auth/logout."""

    def test_success_has_no_data(self, api: httpx.Client, account: Account) -> None:
        assert_status_only(api.post("/auth/logout", json={"refresh_token": account.refresh}))
        assert_error(api.post("/auth/refresh", json={"refresh_token": account.refresh}), 401, "invalid refresh token")

    def test_twice_is_invalid_refresh_token(self, api: httpx.Client, account: Account) -> None:
        assert_status_only(api.post("/auth/logout", json={"refresh_token": account.refresh}))
        response = api.post("/auth/logout", json={"refresh_token": account.refresh})
        assert_error(response, 401, "invalid refresh token")

    def test_a_rotated_token_is_invalid(self, api: httpx.Client, account: Account) -> None:
        data_of(api.post("/auth/refresh", json={"refresh_token": account.refresh}))
        assert_error(api.post("/auth/logout", json={"refresh_token": account.refresh}), 401, "invalid refresh token")

    def test_invalid_tokens(self, api: httpx.Client, account: Account, signing_key: Ed25519PrivateKey) -> None:
        forged = Ed25519PrivateKey.generate()
        for token in ("garbage", account.access, mint(forged, account.id, typ="refresh")):
            assert_error(api.post("/auth/logout", json={"refresh_token": token}), 401, "invalid refresh token")

    def test_expired_token_is_a_success(
        self, api: httpx.Client, account: Account, signing_key: Ed25519PrivateKey
    ) -> None:
        token = mint(signing_key, account.id, typ="refresh", expires_in=-60)
        assert_status_only(api.post("/auth/logout", json={"refresh_token": token}))

    def test_body_errors(self, api: httpx.Client) -> None:
        assert_error(api.post("/auth/logout", json={"refresh_token": None}), 400, "validation failed")
        assert_error(api.post("/auth/logout", json={"refresh_token": ["x"]}), 400, "invalid input")


class TestUpdatePassword:
    """Route 5: POST /auth/update-password."""

    def test_success_revokes_sessions_and_the_new_password_works(self, api: httpx.Client, account: Account) -> None:
        second = data_of(api.post("/auth/login", json={"login": account.email, "password": PASSWORD}))
        body = {"old_password": PASSWORD, "new_password": "brand-new-pass"}
        response = api.post("/auth/update-password", json=body, headers=account.headers)
        assert data_of(response) == {"message": "Password updated successfully"}
        for refresh in (account.refresh, second["refresh_token"]):
            assert_error(api.post("/auth/refresh", json={"refresh_token": refresh}), 401, "invalid refresh token")
        old = api.post("/auth/login", json={"login": account.username, "password": PASSWORD})
        assert_error(old, 401, "invalid credentials")
        assert_token_pair(
            data_of(api.post("/auth/login", json={"login": account.username, "password": "brand-new-pass"}))
        )

    def test_wrong_old_password(self, api: httpx.Client, account: Account) -> None:
        body = {"old_password": "not-my-password", "new_password": "brand-new-pass"}
        assert_error(api.post("/auth/update-password", json=body, headers=account.headers), 401, "invalid credentials")
        assert_token_pair(data_of(api.post("/auth/refresh", json={"refresh_token": account.refresh})))

    def test_user_not_found(self, api: httpx.Client, signing_key: Ed25519PrivateKey) -> None:
        _, headers = ghost(signing_key)
        body = {"old_password": PASSWORD, "new_password": "brand-new-pass"}
        assert_error(api.post("/auth/update-password", json=body, headers=headers), 404, "user not found")

    def test_a_deleted_accounts_token_is_refused(self, api: httpx.Client, account: Account) -> None:
        assert api.delete(f"/users/{account.id}", headers=account.headers).status_code == 204
        body = {"old_password": PASSWORD, "new_password": "brand-new-pass"}
        assert_error(api.post("/auth/update-password", json=body, headers=account.headers), 401, "unauthenticated")

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"old_password": PASSWORD},
            {"new_password": "brand-new-pass"},
            {"old_password": "12345", "new_password": "brand-new-pass"},
            {"old_password": PASSWORD, "new_password": "1234567"},  # decision: new passwords need 8
        ],
        ids=["empty", "no-new", "no-old", "old-too-short", "new-too-short"],
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, body: dict) -> None:
        assert_error(api.post("/auth/update-password", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize("raw", [b"", b"[1]", b'{"old_password": 123456, "new_password": "brand-new-pass"}'])
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.post("/auth/update-password", content=raw, headers=account.headers), 400, "invalid input")

    def test_old_password_of_six_is_checked_not_rejected(self, api: httpx.Client, account: Account) -> None:
        body = {"old_password": "123456", "new_password": "brand-new-pass"}
        assert_error(api.post("/auth/update-password", json=body, headers=account.headers), 401, "invalid credentials")
