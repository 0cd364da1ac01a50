"""`Idempotency-Key` on create post, comment, like and follow: a retry replays the first answer
without writing again, another request under the same key is 422, a retry while the first runs
is 409."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from gateway_contract import Account, assert_error, data_of

from pinstack_testing import eventually

pytestmark = pytest.mark.contract

Register = Callable[..., Account]
REUSED = "idempotency key was already used for a different request"
IN_PROGRESS = "request with this idempotency key is in progress"


def keyed(account: Account, key: str | None = None) -> dict[str, str]:
    return {**account.headers, "Idempotency-Key": key or uuid.uuid4().hex}


def post_count(api: httpx.Client, author: Account) -> int:
    return int(data_of(api.get("/posts/list", params={"author_id": author.id}))["total"])


def assert_replayed(first: httpx.Response, again: httpx.Response) -> None:
    assert (again.status_code, again.content) == (first.status_code, first.content)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers


class TestCreatePost:
    def test_a_retry_replays_the_first_answer_and_writes_once(self, api: httpx.Client, account: Account) -> None:
        headers = keyed(account)
        first = api.post("/posts", json={"title": "once only", "content": "x"}, headers=headers)
        assert first.status_code == 201, first.text
        again = api.post("/posts", json={"title": "once only", "content": "x"}, headers=headers)
        assert_replayed(first, again)
        assert post_count(api, account) == 1

    def test_the_same_body_in_other_words_is_the_same_request(self, api: httpx.Client, account: Account) -> None:
        # Bodies are compared decoded: key case and order do not make another request.
        headers = keyed(account)
        first = api.post("/posts", json={"title": "t1", "content": "c"}, headers=headers)
        again = api.post("/posts", content=b'{"Content": "c", "TITLE": "t1"}', headers=headers)
        assert_replayed(first, again)

    def test_another_body_under_the_same_key_is_422(self, api: httpx.Client, account: Account) -> None:
        headers = keyed(account)
        assert api.post("/posts", json={"title": "first"}, headers=headers).status_code == 201
        assert_error(api.post("/posts", json={"title": "second"}, headers=headers), 422, REUSED)
        assert post_count(api, account) == 1

    def test_keys_belong_to_their_user(self, api: httpx.Client, account: Account, other: Account) -> None:
        key = uuid.uuid4().hex
        for who in (account, other):
            response = api.post("/posts", json={"title": "mine"}, headers=keyed(who, key))
            assert response.status_code == 201 and "Idempotent-Replayed" not in response.headers
            assert post_count(api, who) == 1

    def test_without_a_key_every_request_writes(self, api: httpx.Client, account: Account) -> None:
        for _ in range(2):
            assert api.post("/posts", json={"title": "twice"}, headers=account.headers).status_code == 201
        assert post_count(api, account) == 2

    def test_a_bad_body_claims_no_key(self, api: httpx.Client, account: Account) -> None:
        headers = keyed(account)
        first = api.post("/posts", json={"title": ""}, headers=headers)
        assert_error(first, 400, "validation failed")
        # A bad body is refused before the key is looked at: nothing was claimed.
        assert api.post("/posts", json={"title": "now valid"}, headers=headers).status_code == 201

    @pytest.mark.parametrize("key", ["", "k" * 256])
    def test_an_empty_or_too_long_key_is_400(self, api: httpx.Client, account: Account, key: str) -> None:
        response = api.post("/posts", json={"title": "t"}, headers={**account.headers, "Idempotency-Key": key})
        assert_error(response, 400, "validation failed")
        assert post_count(api, account) == 0

    def test_a_255_character_key_is_fine(self, api: httpx.Client, account: Account) -> None:
        headers = keyed(account, "k" * 255)
        first = api.post("/posts", json={"title": "t"}, headers=headers)
        assert first.status_code == 201
        assert_replayed(first, api.post("/posts", json={"title": "t"}, headers=headers))


class TestFollow:
    def test_ten_concurrent_retries_write_once(self, api: httpx.Client, register: Register) -> None:
        fan, star = register(), register()
        headers = keyed(fan)

        def follow(_: int) -> httpx.Response:
            return api.post("/relation/follow", json={"followee_id": star.id}, headers=headers)

        with ThreadPoolExecutor(max_workers=10) as pool:
            answers = list(pool.map(follow, range(10)))
        outcomes = {(r.status_code, r.headers.get("Idempotent-Replayed")) for r in answers}
        assert outcomes <= {(200, None), (200, "true"), (409, None)}, [r.text for r in answers]
        assert sum(r.status_code == 200 and "Idempotent-Replayed" not in r.headers for r in answers) == 1
        for refused in (r for r in answers if r.status_code == 409):
            assert_error(refused, 409, IN_PROGRESS)  # never "already following this user"
        followers = data_of(api.get(f"/relation/{star.id}/followers"))
        assert followers["total"] == 1
        # Once the first finished, a retry is its replay.
        again = follow(0)
        assert again.headers["Idempotent-Replayed"] == "true"
        assert data_of(again) == {"message": "Followed successfully"}

    def test_an_error_answer_is_replayed(self, api: httpx.Client, account: Account) -> None:
        headers = keyed(account)
        first = api.post("/relation/follow", json={"followee_id": account.id}, headers=headers)
        assert_error(first, 400, "cannot follow yourself")
        assert_replayed(first, api.post("/relation/follow", json={"followee_id": account.id}, headers=headers))

    def test_another_followee_under_the_same_key_is_422(
        self, api: httpx.Client, account: Account, register: Register
    ) -> None:
        a, b = register(), register()
        headers = keyed(account)
        assert api.post("/relation/follow", json={"followee_id": a.id}, headers=headers).status_code == 200
        assert_error(api.post("/relation/follow", json={"followee_id": b.id}, headers=headers), 422, REUSED)


class TestLikeAndComment:
    @pytest.fixture
    async def post_id(self, api: httpx.Client, account: Account) -> int:
        post_id = int(data_of(api.post("/posts", json={"title": "likeable"}, headers=account.headers), 201)["id"])
        await eventually(lambda: api.get(f"/posts/{post_id}/likes").status_code == 200, timeout=30)
        return post_id

    def test_like_replays(self, api: httpx.Client, other: Account, post_id: int) -> None:
        headers = keyed(other)
        first = api.put(f"/posts/{post_id}/like", headers=headers)
        assert data_of(first) == {"liked": True, "like_count": 1}
        assert_replayed(first, api.put(f"/posts/{post_id}/like", headers=headers))
        # The path is part of the request: the same key on another post is another request.
        assert_error(api.put(f"/posts/{post_id + 10**9}/like", headers=headers), 422, REUSED)

    def test_comment_replays_and_writes_once(self, api: httpx.Client, other: Account, post_id: int) -> None:
        headers = keyed(other)
        body: dict[str, Any] = {"content": "first!"}
        first = api.post(f"/posts/{post_id}/comments", json=body, headers=headers)
        assert first.status_code == 201, first.text
        assert_replayed(first, api.post(f"/posts/{post_id}/comments", json=body, headers=headers))
        assert len(data_of(api.get(f"/posts/{post_id}/comments"))["comments"]) == 1
        assert_error(api.post(f"/posts/{post_id}/comments", json={"content": "edited"}, headers=headers), 422, REUSED)
