"""Routes 19-22 of contract §1.4: follow, unfollow, followers and followees."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway_contract import Account, assert_error, data_of

pytestmark = pytest.mark.contract

Register = Callable[..., Account]

NOBODY = 9223372036854775807


def follow(api: httpx.Client, follower: Account, followee_id: int) -> None:
    response = api.post("/relation/follow", json={"followee_id": followee_id}, headers=follower.headers)
    assert data_of(response) == {"message": "Followed successfully"}


def related(api: httpx.Client, user_id: int | str, which: str, **params: Any) -> dict[str, Any]:
    data = data_of(api.get(f"/relation/{user_id}/{which}", params=params))
    assert set(data) == {which, "total", "page", "limit"}, data
    assert all(type(data[key]) is int for key in ("total", "page", "limit")), data
    for user in data[which]:
        assert {"id", "username"} <= set(user) <= {"id", "username", "avatar_url"}, user
        assert type(user["id"]) is int and isinstance(user["username"], str), user
    return data


def ids(data: dict[str, Any], which: str) -> list[int]:
    return [user["id"] for user in data[which]]


@pytest.fixture(scope="module")
def star(register: Register, api: httpx.Client) -> tuple[Account, list[int]]:
    """A user with 3 followers (ids newest first); each of them follows the star only."""
    star = register()
    fans = [register() for _ in range(3)]
    for fan in fans:
        follow(api, fan, star.id)
    return star, [fan.id for fan in reversed(fans)]


class TestFollow:
    """Route 19: POST /relation/follow (JWT); the follower is the caller."""

    def test_success(self, api: httpx.Client, account: Account, register: Register) -> None:
        followee = register(avatar_url="https://x.io/f.png")
        follow(api, account, followee.id)
        assert related(api, followee.id, "followers")["followers"] == [{"id": account.id, "username": account.username}]
        assert related(api, account.id, "followees")["followees"] == [
            {"id": followee.id, "username": followee.username, "avatar_url": "https://x.io/f.png"}
        ]

    def test_the_follower_is_the_caller_not_the_body(
        self, api: httpx.Client, account: Account, other: Account, register: Register
    ) -> None:
        followee = register()
        body = {"followee_id": followee.id, "follower_id": other.id}
        assert data_of(api.post("/relation/follow", json=body, headers=account.headers)) == {
            "message": "Followed successfully"
        }
        assert ids(related(api, followee.id, "followers"), "followers") == [account.id]

    def test_yourself(self, api: httpx.Client, account: Account) -> None:
        response = api.post("/relation/follow", json={"followee_id": account.id}, headers=account.headers)
        assert_error(response, 400, "cannot follow yourself")

    def test_twice_is_a_conflict(self, api: httpx.Client, account: Account, other: Account) -> None:
        follow(api, account, other.id)
        response = api.post("/relation/follow", json={"followee_id": other.id}, headers=account.headers)
        assert_error(response, 409, "already following this user")
        assert related(api, other.id, "followers")["total"] == 1

    def test_unknown_user(self, api: httpx.Client, account: Account) -> None:
        response = api.post("/relation/follow", json={"followee_id": NOBODY}, headers=account.headers)
        assert_error(response, 404, "user not found")

    @pytest.mark.parametrize("body", [{}, {"followee_id": 0}, {"followee_id": -1}, {"followee_id": None}], ids=str)
    def test_validation_failed(self, api: httpx.Client, account: Account, body: dict) -> None:
        assert_error(api.post("/relation/follow", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"[]",
            b"{",
            b'{"followee_id": "1"}',
            b'{"followee_id": 1.5}',
            b'{"followee_id": 1.0}',
            b'{"followee_id": true}',
            b'{"followee_id": 9223372036854775808}',
        ],
    )
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.post("/relation/follow", content=raw, headers=account.headers), 400, "invalid input")

    def test_keys_match_case_insensitively(self, api: httpx.Client, account: Account, other: Account) -> None:
        response = api.post("/relation/follow", json={"FolloweE_ID": other.id}, headers=account.headers)
        assert data_of(response) == {"message": "Followed successfully"}

    def test_order_of_checks(self, api: httpx.Client, account: Account) -> None:
        """The body's rules before the caller is compared or anyone is looked up."""
        post = lambda body: api.post("/relation/follow", json=body, headers=account.headers)  # noqa: E731
        assert_error(post({"followee_id": "x"}), 400, "invalid input")
        assert_error(post({"followee_id": 0}), 400, "validation failed")
        assert_error(post({"followee_id": account.id}), 400, "cannot follow yourself")
        assert_error(post({"followee_id": NOBODY}), 404, "user not found")


class TestUnfollow:
    """Route 20: POST /relation/unfollow (JWT)."""

    def test_success(self, api: httpx.Client, account: Account, other: Account) -> None:
        follow(api, account, other.id)
        response = api.post("/relation/unfollow", json={"followee_id": other.id}, headers=account.headers)
        assert data_of(response) == {"message": "Unfollowed successfully"}
        assert related(api, other.id, "followers") == {"followers": [], "total": 0, "page": 1, "limit": 20}
        follow(api, account, other.id)  # and again

    def test_not_following(self, api: httpx.Client, account: Account, other: Account) -> None:
        for followee in (other.id, NOBODY):
            response = api.post("/relation/unfollow", json={"followee_id": followee}, headers=account.headers)
            assert_error(response, 404, "follow relation not found")

    def test_yourself(self, api: httpx.Client, account: Account) -> None:
        response = api.post("/relation/unfollow", json={"followee_id": account.id}, headers=account.headers)
        assert_error(response, 400, "cannot unfollow yourself")

    @pytest.mark.parametrize("body", [{}, {"followee_id": 0}, {"followee_id": -5}], ids=str)
    def test_validation_failed(self, api: httpx.Client, account: Account, body: dict) -> None:
        assert_error(api.post("/relation/unfollow", json=body, headers=account.headers), 400, "validation failed")

    @pytest.mark.parametrize("raw", [b"", b"[]", b'{"followee_id": "1"}', b'{"followee_id": 1e400}'])
    def test_invalid_input(self, api: httpx.Client, account: Account, raw: bytes) -> None:
        assert_error(api.post("/relation/unfollow", content=raw, headers=account.headers), 400, "invalid input")


@pytest.mark.parametrize("which", ["followers", "followees"])
class TestLists:
    """Routes 21 and 22: GET /relation/{user_id}/followers and /followees."""

    def test_newest_first(self, api: httpx.Client, star: tuple[Account, list[int]], which: str) -> None:
        user, fans = star
        if which == "followers":
            data = related(api, user.id, which)
            assert (ids(data, which), data["total"], data["page"], data["limit"]) == (fans, 3, 1, 20)
        else:
            for fan in fans:
                assert ids(related(api, fan, which), which) == [user.id]

    def test_pages_echo_the_values_used(self, api: httpx.Client, star: tuple[Account, list[int]], which: str) -> None:
        user, fans = star
        subject = user.id if which == "followers" else fans[0]
        expected = fans if which == "followers" else [user.id]
        first = related(api, subject, which, limit=2)
        assert (ids(first, which), first["page"], first["limit"]) == (expected[:2], 1, 2)
        second = related(api, subject, which, limit=2, page=2)
        assert (ids(second, which), second["total"], second["page"]) == (expected[2:], len(expected), 2)
        far = related(api, subject, which, page=2147483647, limit=100)
        assert (far[which], far["total"], far["page"], far["limit"]) == ([], len(expected), 2147483647, 100)

    @pytest.mark.parametrize("limit", ["0", "-1", "101", "abc", "1.5", "", "2147483648", "99999999999999999999"])
    def test_unusable_limit_is_20(self, api: httpx.Client, account: Account, which: str, limit: str) -> None:
        assert related(api, account.id, which, limit=limit)["limit"] == 20

    @pytest.mark.parametrize("page", ["0", "-1", "abc", "", "1e3", "2147483648"])
    def test_unusable_page_is_1(self, api: httpx.Client, account: Account, which: str, page: str) -> None:
        assert related(api, account.id, which, page=page)["page"] == 1

    def test_nobody_is_an_empty_list(self, api: httpx.Client, account: Account, which: str) -> None:
        assert related(api, account.id, which) == {which: [], "total": 0, "page": 1, "limit": 20}

    def test_unknown_user(self, api: httpx.Client, which: str) -> None:
        assert_error(api.get(f"/relation/{NOBODY}/{which}"), 404, "user not found")

    @pytest.mark.parametrize("raw", ["abc", "1.5", "9223372036854775808", "%201"])
    def test_not_an_int64_is_invalid_input(self, api: httpx.Client, which: str, raw: str) -> None:
        assert_error(api.get(f"/relation/{raw}/{which}"), 400, "invalid input")

    @pytest.mark.parametrize("raw", ["0", "-1"])
    def test_below_one_is_validation_failed(self, api: httpx.Client, which: str, raw: str) -> None:
        assert_error(api.get(f"/relation/{raw}/{which}"), 400, "validation failed")
