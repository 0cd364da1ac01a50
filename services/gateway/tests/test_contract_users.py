"""Routes 6-13 of contract §1.4: reading, searching, creating, updating and deleting users, and
what a deletion takes along through the events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_contract import (
    PASSWORD,
    Account,
    Stack,
    assert_error,
    assert_no_content,
    assert_status_only,
    assert_token_pair,
    assert_user,
    data_of,
    envelope,
    ghost,
    unique_name,
)

from pinstack_testing import eventually

pytestmark = pytest.mark.contract

Register = Callable[..., Account]


def new_user(**fields: object) -> dict[str, object]:
    name = unique_name()
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD, **fields}


def delete(api: httpx.Client, account: Account) -> None:
    assert_no_content(api.delete(f"/users/{account.id}", headers=account.headers))


class TestGetById:
    """Route 6: GET /users/{id}."""

    def test_success(self, api: httpx.Client, account: Account) -> None:
        user = data_of(api.get(f"/users/{account.id}"))
        assert_user(user, id=account.id, username=account.username, email=account.email)
        assert_user(user, full_name=None, bio=None, avatar_url=None)  # omitted, not null
        assert set(user) == {"id", "username", "email", "created_at", "updated_at"}

    def test_every_field_when_set(self, api: httpx.Client, register: Register) -> None:
        account = register(full_name="Grace Hopper", bio="Compilers & <bugs>", avatar_url="https://x.io/g.png")
        user = data_of(api.get(f"/users/{account.id}"))
        assert set(user) == {"id", "username", "email", "full_name", "bio", "avatar_url", "created_at", "updated_at"}
        assert_user(user, full_name="Grace Hopper", bio="Compilers & <bugs>", avatar_url="https://x.io/g.png")

    def test_go_integer_syntax(self, api: httpx.Client, account: Account) -> None:
        for raw in (f"+{account.id}", f"00{account.id}"):
            assert data_of(api.get(f"/users/{raw}"))["id"] == account.id

    @pytest.mark.parametrize(
        "raw", ["abc", "1.5", "1e3", "0x10", "99999999999999999999", "9223372036854775808", "%201"]
    )
    def test_not_an_int64_is_invalid_input(self, api: httpx.Client, raw: str) -> None:
        assert_error(api.get(f"/users/{raw}"), 400, "invalid input")

    @pytest.mark.parametrize("raw", ["0", "-1", "-9223372036854775808"])
    def test_below_one_is_validation_failed(self, api: httpx.Client, raw: str) -> None:
        assert_error(api.get(f"/users/{raw}"), 400, "validation failed")

    def test_not_found(self, api: httpx.Client) -> None:
        assert_error(api.get("/users/9223372036854775807"), 404, "user not found")


class TestGetByUsername:
    """Route 7: GET /users/username/{username}."""

    def test_success(self, api: httpx.Client, account: Account) -> None:
        user = data_of(api.get(f"/users/username/{account.username}"))
        assert_user(user, id=account.id, username=account.username, email=account.email)

    def test_unicode_username(self, api: httpx.Client, register: Register) -> None:
        account = register(username=f"zoë😀{uuid.uuid4().hex[:8]}", email=f"{unique_name()}@example.com")
        assert data_of(api.get(f"/users/username/{account.username}"))["id"] == account.id

    def test_not_found(self, api: httpx.Client) -> None:
        assert_error(api.get(f"/users/username/{unique_name()}"), 404, "user not found")

    @pytest.mark.parametrize("username", ["ab", "x", "a" * 33])
    def test_impossible_username_is_validation_failed(self, api: httpx.Client, username: str) -> None:
        # Upstream answered 500 (the user service's own rule, §7.7); bad input is a 400.
        assert_error(api.get(f"/users/username/{username}"), 400, "validation failed")


class TestGetByEmail:
    """Route 8: GET /users/email/{email}."""

    def test_success(self, api: httpx.Client, account: Account) -> None:
        user = data_of(api.get(f"/users/email/{account.email}"))
        assert_user(user, id=account.id, username=account.username, email=account.email)

    def test_not_found(self, api: httpx.Client) -> None:
        assert_error(api.get(f"/users/email/{unique_name()}@example.com"), 404, "user not found")

    @pytest.mark.parametrize("email", ["not-an-email", "%20", "a@b.c", "a@b", "@example.com", "a b@example.com"])
    def test_not_an_email_is_validation_failed(self, api: httpx.Client, email: str) -> None:
        assert_error(api.get(f"/users/email/{email}"), 400, "validation failed")


def search(api: httpx.Client, **params: Any) -> dict[str, Any]:
    data = data_of(api.get("/users/search", params=params))
    assert set(data) == {"users", "total"} and isinstance(data["users"], list) and type(data["total"]) is int
    for user in data["users"]:
        assert_user(user)
    return data


def ids(data: dict[str, Any]) -> list[int]:
    return [u["id"] for u in data["users"]]


@pytest.fixture(scope="module")
def crowd(register: Register) -> tuple[str, list[int]]:
    """12 users whose usernames share a token; their ids in ascending order."""
    token = uuid.uuid4().hex[:12]
    accounts = [register(username=f"c{token}{i:02d}") for i in range(12)]
    return token, sorted(a.id for a in accounts)


class TestSearch:
    """Route 9: GET /users/search."""

    def test_pages_have_a_real_total_and_a_stable_order(self, api: httpx.Client, crowd: tuple[str, list[int]]) -> None:
        token, expected = crowd
        pages = [search(api, query=token, limit=5, page=page) for page in (1, 2, 3, 4)]
        assert [ids(p) for p in pages] == [expected[:5], expected[5:10], expected[10:], []]
        assert [p["total"] for p in pages] == [12, 12, 12, 12]  # decision: the number of matches

    def test_defaults_are_page_1_and_limit_10(self, api: httpx.Client, crowd: tuple[str, list[int]]) -> None:
        token, expected = crowd
        assert ids(search(api, query=token)) == expected[:10]
        assert ids(search(api, query=token, limit=100)) == expected

    @pytest.mark.parametrize("limit", ["0", "-1", "101", "abc", "1.5", "", "99999999999999999999"])
    def test_out_of_range_limit_is_10(self, api: httpx.Client, crowd: tuple[str, list[int]], limit: str) -> None:
        token, expected = crowd
        assert ids(search(api, query=token, limit=limit)) == expected[:10]

    @pytest.mark.parametrize("page", ["0", "-1", "abc", "", "1e3"])
    def test_out_of_range_page_is_1(self, api: httpx.Client, crowd: tuple[str, list[int]], page: str) -> None:
        token, expected = crowd
        assert ids(search(api, query=token, limit=3, page=page)) == expected[:3]

    def test_matches_username_email_and_full_name_case_insensitively(
        self, api: httpx.Client, register: Register
    ) -> None:
        token = uuid.uuid4().hex[:12]
        by_username = register(username=f"N{token.upper()}")
        by_email = register(email=f"{unique_name()}@{token}.example.com")
        by_name = register(full_name=f"Someone {token.upper()}")
        register(full_name="Nobody In Particular")
        data = search(api, query=token)
        assert ids(data) == sorted([by_username.id, by_email.id, by_name.id])
        assert data["total"] == 3

    def test_no_match_is_an_empty_list(self, api: httpx.Client) -> None:
        assert search(api, query=unique_name("none-")) == {"users": [], "total": 0}

    @pytest.mark.parametrize("meta", ["%", "_", "\\"])
    def test_like_metacharacters_match_literally(self, api: httpx.Client, register: Register, meta: str) -> None:
        token = uuid.uuid4().hex[:12]
        literal = register(username=f"m{meta}{token}", email=f"{unique_name()}@example.com")
        register(username=f"mx{token}", email=f"{unique_name()}@example.com")
        assert ids(search(api, query=f"m{meta}{token}")) == [literal.id]

    @pytest.mark.parametrize("params", [{}, {"query": ""}, {"query": "x" * 101}], ids=["missing", "empty", "too-long"])
    def test_invalid_search_query(self, api: httpx.Client, params: dict) -> None:
        assert_error(api.get("/users/search", params=params), 400, "invalid search query")


class TestCreateUser:
    """Route 10: POST /users (JWT)."""

    def test_success(self, api: httpx.Client, account: Account) -> None:
        body = new_user(full_name="Created User", bio="made by someone else", avatar_url="https://x.io/c.png")
        user = data_of(api.post("/users", json=body, headers=account.headers), 201)
        assert_user(
            user,
            username=body["username"],
            email=body["email"],
            full_name="Created User",
            bio="made by someone else",
            avatar_url="https://x.io/c.png",
        )
        assert data_of(api.get(f"/users/{user['id']}")) == user

    def test_full_name_is_optional(self, api: httpx.Client, account: Account) -> None:
        user = data_of(api.post("/users", json=new_user(), headers=account.headers), 201)
        assert_user(user, full_name=None, bio=None, avatar_url=None)

    def test_password_is_hashed_so_the_user_can_log_in(self, api: httpx.Client, account: Account) -> None:
        body = new_user()
        data_of(api.post("/users", json=body, headers=account.headers), 201)
        login = api.post("/auth/login", json={"login": body["username"], "password": body["password"]})
        assert_token_pair(data_of(login))

    @pytest.mark.parametrize(
        "fields",
        [
            {"username": "ab"},
            {"username": "a" * 33},
            {"email": "not-an-email"},
            {"password": "12345"},
            {"password": "1234567"},  # decision: new passwords need 8
            {"full_name": "x" * 101},
            {"bio": "x" * 501},
            {"avatar_url": "not-a-url"},
        ],
        ids=lambda f: f"{next(iter(f))}={str(next(iter(f.values())))[:12]!r}",
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, fields: dict) -> None:
        response = api.post("/users", json=new_user(**fields), headers=account.headers)
        assert_error(response, 400, "validation failed")

    @pytest.mark.parametrize("missing", ["username", "email", "password"])
    def test_missing_required_field(self, api: httpx.Client, account: Account, missing: str) -> None:
        body = new_user()
        del body[missing]
        assert_error(api.post("/users", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize("raw", [b"", b"[]", b'{"username": ["x"]}', b'{"username": "abc", "bio": 5}'])
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.post("/users", content=raw, headers=account.headers), 400, "invalid input")

    def test_duplicates(self, api: httpx.Client, account: Account, other: Account) -> None:
        for username in (other.username, other.username.upper()):
            response = api.post("/users", json=new_user(username=username), headers=account.headers)
            assert_error(response, 409, "username already exists")
        for email in (other.email, other.email.upper()):
            response = api.post("/users", json=new_user(email=email), headers=account.headers)
            assert_error(response, 409, "email already exists")


class TestUpdateUser:
    """Route 11: PUT /users (JWT); checks in order: decode, validate, owner, exists."""

    def test_success_merges_present_fields(self, api: httpx.Client, register: Register) -> None:
        account = register(full_name="Old Name", bio="old bio", avatar_url="https://x.io/old.png")
        body = {"id": account.id, "bio": "new bio", "avatar_url": "https://x.io/ignored.png"}
        user = data_of(api.put("/users", json=body, headers=account.headers))
        assert_user(
            user,
            id=account.id,
            username=account.username,
            email=account.email,
            full_name="Old Name",
            bio="new bio",
            avatar_url="https://x.io/old.png",  # the avatar is not changed by this route
        )
        assert data_of(api.get(f"/users/{account.id}")) == user

    def test_new_username_and_email_replace_the_old_ones(self, api: httpx.Client, account: Account) -> None:
        # read first so that the old identity is cached: the update must invalidate it
        for path in (f"/users/{account.id}", f"/users/username/{account.username}", f"/users/email/{account.email}"):
            data_of(api.get(path))
        name = unique_name()
        body = {"id": account.id, "username": name, "email": f"{name}@example.org", "full_name": "Renamed"}
        user = data_of(api.put("/users", json=body, headers=account.headers))
        assert_user(user, username=name, email=f"{name}@example.org", full_name="Renamed")
        assert data_of(api.get(f"/users/{account.id}")) == user
        assert data_of(api.get(f"/users/username/{name}")) == user
        assert data_of(api.get(f"/users/email/{name}@example.org")) == user
        assert_error(api.get(f"/users/username/{account.username}"), 404, "user not found")
        assert_error(api.get(f"/users/email/{account.email}"), 404, "user not found")

    def test_id_only_changes_nothing(self, api: httpx.Client, account: Account) -> None:
        before = data_of(api.get(f"/users/{account.id}"))
        after = data_of(api.put("/users", json={"id": account.id}, headers=account.headers))
        assert {k: v for k, v in after.items() if k != "updated_at"} == {
            k: v for k, v in before.items() if k != "updated_at"
        }

    def test_duplicates(self, api: httpx.Client, account: Account, other: Account) -> None:
        for username in (other.username, other.username.upper()):
            body = {"id": account.id, "username": username}
            assert_error(api.put("/users", json=body, headers=account.headers), 409, "username already exists")
        for email in (other.email, other.email.upper()):
            body = {"id": account.id, "email": email}
            assert_error(api.put("/users", json=body, headers=account.headers), 409, "email already exists")

    @pytest.mark.parametrize(
        "raw",
        [b"", b"[]", b'{"id": "1"}', b'{"id": 1.5}', b'{"id": 1.0}', b'{"id": 9223372036854775808}', b'{"id": true}'],
    )
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.put("/users", content=raw, headers=account.headers), 400, "invalid input")

    @pytest.mark.parametrize(
        "fields",
        [
            {"id": None},
            {"id": 0},
            {"id": -1},
            {"username": "ab"},
            {"username": "a" * 33},
            {"email": "not-an-email"},
            {"full_name": "x" * 101},
            {"bio": "x" * 501},
        ],
        ids=lambda f: f"{next(iter(f))}={str(next(iter(f.values())))[:12]!r}",
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, fields: dict) -> None:
        body = {"id": account.id, **fields}
        assert_error(api.put("/users", json=body, headers=account.headers), 400, "validation failed")

    def test_someone_else_is_forbidden(self, api: httpx.Client, account: Account, other: Account) -> None:
        response = api.put("/users", json={"id": other.id, "bio": "pwned"}, headers=account.headers)
        assert_error(response, 403, "forbidden")
        assert "bio" not in data_of(api.get(f"/users/{other.id}"))

    def test_unknown_caller_is_not_found(self, api: httpx.Client, signing_key: Ed25519PrivateKey) -> None:
        ghost_id, headers = ghost(signing_key)
        response = api.put("/users", json={"id": ghost_id, "bio": "ghost"}, headers=headers)
        assert_error(response, 404, "user not found")

    def test_deleted_callers_token_is_refused(self, api: httpx.Client, account: Account) -> None:
        delete(api, account)
        response = api.put("/users", json={"id": account.id, "bio": "ghost"}, headers=account.headers)
        assert_error(response, 401, "unauthenticated")

    def test_order_of_checks(
        self, api: httpx.Client, account: Account, other: Account, signing_key: Ed25519PrivateKey
    ) -> None:
        put = lambda body, headers=account.headers: api.put("/users", json=body, headers=headers)  # noqa: E731
        # invalid input before validation failed
        assert_error(put({"id": "x", "username": "ab"}), 400, "invalid input")
        assert_error(put({"id": account.id, "username": "ab", "bio": 7}), 400, "invalid input")
        # validation failed before forbidden
        assert_error(put({"id": other.id, "username": "ab"}), 400, "validation failed")
        assert_error(put({"id": 0}), 400, "validation failed")
        # forbidden before not found
        ghost_id, as_ghost = ghost(signing_key)
        assert_error(put({"id": other.id}, as_ghost), 403, "forbidden")
        assert_error(put({"id": ghost_id}, as_ghost), 404, "user not found")


class TestDeleteUser:
    """Route 12: DELETE /users/{id} (JWT)."""

    def test_success_is_204_without_body(self, api: httpx.Client, account: Account) -> None:
        response = api.delete(f"/users/{account.id}", headers=account.headers)
        assert_no_content(response)
        assert_error(api.get(f"/users/{account.id}"), 404, "user not found")
        assert_error(api.get(f"/users/username/{account.username}"), 404, "user not found")
        login = api.post("/auth/login", json={"login": account.username, "password": PASSWORD})
        assert_error(login, 404, "user not found")

    def test_deleting_again_is_refused(self, api: httpx.Client, account: Account) -> None:
        delete(api, account)
        assert_error(api.delete(f"/users/{account.id}", headers=account.headers), 401, "unauthenticated")

    def test_unknown_caller_is_not_found(self, api: httpx.Client, signing_key: Ed25519PrivateKey) -> None:
        ghost_id, headers = ghost(signing_key)
        assert_error(api.delete(f"/users/{ghost_id}", headers=headers), 404, "user not found")

    @pytest.mark.parametrize("raw", ["abc", "1.5", "1e3", "99999999999999999999"])
    def test_not_an_int64_is_invalid_input(self, api: httpx.Client, account: Account, raw: str) -> None:
        assert_error(api.delete(f"/users/{raw}", headers=account.headers), 400, "invalid input")

    @pytest.mark.parametrize("raw", ["0", "-1"])
    def test_below_one_is_validation_failed(self, api: httpx.Client, account: Account, raw: str) -> None:
        assert_error(api.delete(f"/users/{raw}", headers=account.headers), 400, "validation failed")

    def test_order_of_checks(
        self, api: httpx.Client, account: Account, other: Account, signing_key: Ed25519PrivateKey
    ) -> None:
        """invalid input, then validation failed, then forbidden, then not found (for a caller
        whose account does not exist: a deleted account's own token is refused before)."""
        ghost_id, as_ghost = ghost(signing_key)
        for headers in (account.headers, as_ghost):
            assert_error(api.delete("/users/abc", headers=headers), 400, "invalid input")
            assert_error(api.delete("/users/0", headers=headers), 400, "validation failed")
            assert_error(api.delete(f"/users/{other.id}", headers=headers), 403, "forbidden")
        assert_error(api.delete(f"/users/{ghost_id}", headers=as_ghost), 404, "user not found")

    def test_someone_else_is_forbidden(self, api: httpx.Client, account: Account, other: Account) -> None:
        assert_error(api.delete(f"/users/{other.id}", headers=account.headers), 403, "forbidden")
        assert data_of(api.get(f"/users/{other.id}"))["id"] == other.id
        assert_error(api.delete("/users/9223372036854775807", headers=account.headers), 403, "forbidden")


class TestUpdateAvatar:
    """Route 13: PUT /users/avatar (JWT)."""

    @pytest.mark.parametrize("url", ["https://picsum.photos/300/300", "HTTP://X.IO/A.PNG"])
    def test_success_has_no_data(self, api: httpx.Client, account: Account, url: str) -> None:
        assert_status_only(api.put("/users/avatar", json={"avatar_url": url}, headers=account.headers))
        assert_user(data_of(api.get(f"/users/{account.id}")), avatar_url=url)

    @pytest.mark.parametrize(
        "body",
        [{}, {"avatar_url": ""}, {"avatar_url": None}, {"avatar_url": "not-a-url"}, {"avatar_url": "/relative.png"}],
    )
    def test_validation_failed(self, api: httpx.Client, account: Account, body: dict) -> None:
        assert_error(api.put("/users/avatar", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize("raw", [b"", b"[]", b'{"avatar_url": 5}', b"{"])
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.put("/users/avatar", content=raw, headers=account.headers), 400, "invalid input")

    def test_unknown_caller_is_not_found(self, api: httpx.Client, signing_key: Ed25519PrivateKey) -> None:
        _, headers = ghost(signing_key)
        response = api.put("/users/avatar", json={"avatar_url": "https://x.io/a.png"}, headers=headers)
        assert_error(response, 404, "user not found")


def open_sessions(stack: Stack, user_id: int) -> int:
    """Refresh tokens of the user the auth service would still honour."""
    with psycopg.connect(stack.databases["auth"]) as conn:
        row = conn.execute(
            "SELECT count(*) FROM refresh_tokens WHERE user_id = %s AND revoked_at IS NULL", (user_id,)
        ).fetchone()
    return int(row[0]) if row else 0


class TestDeleteCascade:
    """Route 12, through the events: a deleted user's posts, follows, notifications and sessions
    go too (upstream kept them, §7.15), and nothing that referred to the user answers 500."""

    async def test_everything_of_the_user_goes(
        self, api: httpx.Client, register: Register, stack: Stack, events_ready: None
    ) -> None:
        victim, friend, fan = register(avatar_url="https://x.io/v.png"), register(), register()
        login = api.post("/auth/login", json={"login": victim.username, "password": PASSWORD})
        second_session = assert_token_pair(data_of(login))["refresh_token"]
        own = victim.headers
        posts = [
            data_of(api.post("/posts", json={"title": f"p{i}", "tags": ["x"]}, headers=own), 201)["id"]
            for i in range(2)
        ]
        kept_post = data_of(api.post("/posts", json={"title": "kept"}, headers=friend.headers), 201)["id"]
        data_of(api.post("/relation/follow", json={"followee_id": friend.id}, headers=own))
        data_of(api.post("/relation/follow", json={"followee_id": victim.id}, headers=fan.headers))
        sent = {"user_id": victim.id, "type": "like", "payload": {"post_id": posts[0]}}
        notification = data_of(api.post("/notification/send", json=sent, headers=friend.headers))["notification_id"]
        data_of(api.post("/notification/send", json={"user_id": friend.id, "type": "like"}, headers=own))

        def feed_total(account: Account) -> int:
            return int(data_of(api.get("/notification/feed", headers=account.headers))["total"])

        def victims_notifications() -> Any:
            """Read from the notifications service itself: the victim's token ends with the account."""
            return httpx.get(f"{stack.urls['notifications']}/users/{victim.id}/notifications").json()["data"]

        def follower_ids(user_id: int, which: str) -> list[int]:
            return [u["id"] for u in data_of(api.get(f"/relation/{user_id}/{which}"))[which]]

        await eventually(lambda: feed_total(victim) == 2 and feed_total(friend) == 2, timeout=10)  # follows arrived
        assert open_sessions(stack, victim.id) == 2

        assert_no_content(api.delete(f"/users/{victim.id}", headers=own))

        def pending() -> list[str]:
            """What has not been cascaded yet (the consumers of `user-events` work independently)."""
            checks = {
                "posts": lambda: all(api.get(f"/posts/{post}").status_code == 404 for post in posts),
                "followers": lambda: victim.id not in follower_ids(friend.id, "followers"),
                "followees": lambda: victim.id not in follower_ids(fan.id, "followees"),
                "notifications": lambda: victims_notifications()["total"] == 0,
                "sessions": lambda: open_sessions(stack, victim.id) == 0,
            }
            return [name for name, done in checks.items() if not done()]

        try:
            await eventually(lambda: not pending(), timeout=30, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"not cascaded within 30 s: {pending()}") from exc

        # posts
        for post in posts:
            assert_error(api.get(f"/posts/{post}"), 404, "post not found")
        assert data_of(api.get("/posts/list", params={"author_id": victim.id})) == {"posts": [], "total": 0}
        assert data_of(api.get(f"/posts/{kept_post}"))["id"] == kept_post
        # follows
        assert follower_ids(friend.id, "followers") == []
        assert follower_ids(fan.id, "followees") == []
        # notifications: the user's are gone, and so is the follow notification they caused for
        # their friend (notifications record their actor); the one they merely sent stays
        assert victims_notifications()["notifications"] == []
        unread = httpx.get(f"{stack.urls['notifications']}/users/{victim.id}/notifications/unread-count")
        assert data_of(unread) == {"count": 0}
        gone = httpx.get(f"{stack.urls['notifications']}/notifications/{notification}", params={"user_id": victim.id})
        assert_error(gone, 404, "notification not found")
        assert [n["type"] for n in data_of(api.get("/notification/feed", headers=friend.headers))["notifications"]] == [
            "like"
        ]
        # sessions
        for refresh_token in (victim.refresh, second_session):
            assert_error(api.post("/auth/logout", json={"refresh_token": refresh_token}), 401, "invalid refresh token")
            assert_error(api.post("/auth/refresh", json={"refresh_token": refresh_token}), 401, "invalid refresh token")

        # Whatever still refers to the user answers in the envelope, never 500.
        answers = {
            "GET /users/{id}": (api.get(f"/users/{victim.id}"), 404, "user not found"),
            "followers": (api.get(f"/relation/{victim.id}/followers"), 404, "user not found"),
            "followees": (api.get(f"/relation/{victim.id}/followees"), 404, "user not found"),
            "follow them": (
                api.post("/relation/follow", json={"followee_id": victim.id}, headers=friend.headers),
                404,
                "user not found",
            ),
            "unfollow them": (
                api.post("/relation/unfollow", json={"followee_id": victim.id}, headers=fan.headers),
                404,
                "follow relation not found",
            ),
            "notify them": (
                api.post("/notification/send", json={"user_id": victim.id, "type": "x"}, headers=friend.headers),
                404,
                "user not found",
            ),
        }
        # The deleted user's access token, still unexpired, is refused whatever it asks.
        refused = {
            "post as them": api.post("/posts", json={"title": "ghost"}, headers=own),
            "edit their post": api.put(f"/posts/{posts[0]}", json={"title": "x"}, headers=own),
            "delete their post": api.delete(f"/posts/{posts[1]}", headers=own),
            "follow as them": api.post("/relation/follow", json={"followee_id": friend.id}, headers=own),
            "unfollow as them": api.post("/relation/unfollow", json={"followee_id": friend.id}, headers=own),
            "read it": api.put(f"/notification/{notification}/read", headers=own),
            "delete it": api.delete(f"/notification/{notification}", headers=own),
            "delete again": api.delete(f"/users/{victim.id}", headers=own),
            "avatar": api.put("/users/avatar", json={"avatar_url": "https://x.io/a.png"}, headers=own),
            "read all": api.put("/notification/read-all", headers=own),
            "send": api.post("/notification/send", json={"user_id": friend.id, "type": "x"}, headers=own),
        }
        for name, response in refused.items():
            assert response.status_code == 401, (name, response.status_code, response.text[:200])
            assert_error(response, 401, "unauthenticated")
        for name, (response, status, message) in answers.items():
            assert response.status_code == status, (name, response.status_code, response.text[:200])
            assert_error(response, status, message)
        listed = api.get("/posts/list")
        assert listed.status_code == 200, listed.text[:200]
        envelope(listed)
