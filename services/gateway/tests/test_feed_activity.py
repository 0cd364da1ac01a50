"""The routes beyond the upstream contract: the home feed (feed service ids hydrated with posts
and counters), likes and comments (activity service). Events flow through Kafka, so the reads
that depend on them wait with `eventually`."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from gateway_contract import Account, assert_error, assert_status_only, cache_hits, data_of

from pinstack_testing import eventually

pytestmark = pytest.mark.contract

Register = Callable[..., Account]

IMAGE = {"url": "https://x.io/1.png", "type": "image", "position": 1}
COUNTERS = {"like_count", "comment_count", "view_count", "liked"}


def post(api: httpx.Client, author: Account, title: str, **fields: Any) -> int:
    body = {"title": title, **fields}
    return int(data_of(api.post("/posts", json=body, headers=author.headers), 201)["id"])


def feed_page(api: httpx.Client, reader: Account, **params: Any) -> httpx.Response:
    response = api.get("/feed", params=params, headers=reader.headers)
    assert response.status_code == 200, response.text
    return response


def feed_items(api: httpx.Client, reader: Account, **params: Any) -> list[dict[str, Any]]:
    return list(data_of(feed_page(api, reader, **params))["items"])


async def known_to_activity(api: httpx.Client, post_id: int) -> None:
    """The activity service learns of a post from its `post_created` event."""
    await eventually(lambda: api.get(f"/posts/{post_id}/likes").status_code == 200, timeout=30, interval=0.05)


@pytest.fixture
async def followed(api: httpx.Client, register: Register, events_ready: None) -> tuple[Account, Account, list[int]]:
    """A follows B, then B posts three times; A's feed holds them all (newest first)."""
    reader, author = register(), register(full_name="Bea Author")
    data_of(api.post("/relation/follow", json={"followee_id": author.id}, headers=reader.headers))
    ids = [post(api, author, f"post {i}", tags=[f"tag{i}"], media_items=[IMAGE]) for i in range(3)]
    newest = ids[::-1]
    await eventually(lambda: [i["id"] for i in feed_items(api, reader)] == newest, timeout=30, interval=0.05)
    return reader, author, newest


class TestFeed:
    async def test_newest_first_hydrated_and_paged(
        self, api: httpx.Client, followed: tuple[Account, Account, list[int]], record_property: Callable[..., None]
    ) -> None:
        reader, author, newest = followed
        items = feed_items(api, reader)
        for item, post_id in zip(items, newest, strict=True):
            assert item == {**data_of(api.get(f"/posts/{post_id}")), **{k: item[k] for k in COUNTERS}}
            assert item["author"]["id"] == author.id and item["author"]["username"] == author.username
            assert item["tags"][0]["name"].startswith("tag") and item["media"][0]["url"] == IMAGE["url"]
            assert {k: item[k] for k in COUNTERS} == {
                "like_count": 0,
                "comment_count": 0,
                "view_count": 0,
                "liked": False,
            }

        first = feed_page(api, reader, limit=2)
        page = data_of(first)
        assert [i["id"] for i in page["items"]] == newest[:2]
        cursor = page["next_cursor"]
        assert cursor
        link = first.headers["link"]
        assert link.startswith("</api/v1/feed?") and link.endswith('>; rel="next"')
        assert "limit=2" in link and "cursor=" in link
        second = data_of(api.get(link[len("</api/v1") : link.index(">")], headers=reader.headers))
        assert [i["id"] for i in second["items"]] == newest[2:]
        assert second["next_cursor"] is None
        assert "link" not in feed_page(api, reader, limit=2, cursor=cursor).headers

        timings = []
        for _ in range(20):
            start = time.perf_counter()
            feed_page(api, reader, limit=20)
            timings.append(time.perf_counter() - start)
        timings.sort()
        record_property("feed_page_p50_ms", round(timings[len(timings) // 2] * 1000, 2))
        record_property("feed_page_max_ms", round(timings[-1] * 1000, 2))

    async def test_deleted_posts_are_dropped(
        self, api: httpx.Client, followed: tuple[Account, Account, list[int]]
    ) -> None:
        reader, author, newest = followed
        assert_status_only(api.delete(f"/posts/{newest[0]}", headers=author.headers))
        assert [i["id"] for i in feed_items(api, reader)] == newest[1:]  # at once: hydration skips it

    async def test_a_page_is_kept_for_its_caller_and_a_like_is_seen_at_once(
        self, api: httpx.Client, server: httpx.Client, followed: tuple[Account, Account, list[int]]
    ) -> None:
        reader, author, newest = followed
        await known_to_activity(api, newest[0])
        data_of(api.put(f"/posts/{newest[0]}/like", headers=reader.headers))
        first = feed_page(api, reader).content
        before = cache_hits(server)
        assert feed_page(api, reader).content == first  # within the TTL: the kept page
        assert cache_hits(server) >= before + 1
        # the author's feed holds the same posts: their page is theirs, not the reader's
        assert {i["id"]: i["liked"] for i in feed_items(api, author)}[newest[0]] is False
        assert {i["id"]: i["liked"] for i in feed_items(api, reader)}[newest[0]] is True
        data_of(api.put(f"/posts/{newest[0]}/like", headers=author.headers))
        counters = {i["id"]: i["like_count"] for i in feed_items(api, reader)}  # at once, not after the TTL
        assert counters[newest[0]] == 2

    async def test_a_kept_page_is_not_served_once_its_session_ended(
        self, api: httpx.Client, server: httpx.Client, followed: tuple[Account, Account, list[int]]
    ) -> None:
        reader, _, _ = followed
        first = feed_page(api, reader).content
        before = cache_hits(server)
        assert feed_page(api, reader).content == first
        assert cache_hits(server) >= before + 1  # kept for this token
        assert api.get("/feed", headers={"Authorization": f"Bearer {reader.access}x"}).status_code == 401
        assert_status_only(api.post("/auth/logout", json={"refresh_token": reader.refresh}))
        assert_error(api.get("/feed", headers=reader.headers), 401, "unauthenticated")  # within the TTL

    def test_an_empty_feed(self, api: httpx.Client, account: Account) -> None:
        response = feed_page(api, account)
        assert data_of(response) == {"items": [], "next_cursor": None}
        assert "link" not in response.headers

    @pytest.mark.parametrize(
        ("limit", "message"), [("x", "invalid input"), ("0", "validation failed"), ("101", "validation failed")]
    )
    def test_bad_limit(self, api: httpx.Client, account: Account, limit: str, message: str) -> None:
        assert_error(api.get("/feed", params={"limit": limit}, headers=account.headers), 400, message)

    def test_bad_cursor(self, api: httpx.Client, account: Account) -> None:
        response = api.get("/feed", params={"cursor": "not a cursor!"}, headers=account.headers)
        assert response.status_code == 400

    def test_needs_a_token(self, api: httpx.Client) -> None:
        assert_error(api.get("/feed"), 401, "unauthenticated")


class TestLikes:
    async def test_like_is_idempotent_and_shows_in_the_feed(
        self, api: httpx.Client, followed: tuple[Account, Account, list[int]]
    ) -> None:
        reader, _, newest = followed
        target = newest[1]
        await known_to_activity(api, target)
        for _ in range(2):
            assert data_of(api.put(f"/posts/{target}/like", headers=reader.headers)) == {"liked": True, "like_count": 1}
        likes = data_of(api.get(f"/posts/{target}/likes"))
        assert [like["user_id"] for like in likes["likes"]] == [reader.id] and likes["next_cursor"] is None
        liked = {i["id"]: (i["like_count"], i["liked"]) for i in feed_items(api, reader)}
        assert liked == {newest[0]: (0, False), target: (1, True), newest[2]: (0, False)}

        for _ in range(2):
            assert data_of(api.delete(f"/posts/{target}/like", headers=reader.headers)) == {
                "liked": False,
                "like_count": 0,
            }
        assert data_of(api.get(f"/posts/{target}/likes"))["likes"] == []
        assert {i["id"]: i["liked"] for i in feed_items(api, reader)}[target] is False

    def test_unknown_post(self, api: httpx.Client, account: Account) -> None:
        assert_error(api.put("/posts/999999999/like", headers=account.headers), 404, "post not found")
        assert_error(api.get("/posts/999999999/likes"), 404, "post not found")

    def test_needs_a_token(self, api: httpx.Client) -> None:
        assert_error(api.put("/posts/1/like"), 401, "unauthenticated")
        assert_error(api.delete("/posts/1/like"), 401, "unauthenticated")


class TestComments:
    async def test_comment_reply_list_and_delete(
        self, api: httpx.Client, account: Account, register: Register, events_ready: None
    ) -> None:
        author, commenter, stranger = account, register(), register()
        post_id = post(api, author, "commented")
        await known_to_activity(api, post_id)
        url = f"/posts/{post_id}/comments"

        top = data_of(api.post(url, json={"content": "first!"}, headers=commenter.headers), 201)
        assert top["post_id"] == post_id and top["author_id"] == commenter.id and top["parent_id"] is None
        assert top["content"] == "first!" and top["reply_count"] == 0
        reply = data_of(api.post(url, json={"content": "re", "parent_id": top["id"]}, headers=author.headers), 201)
        assert reply["parent_id"] == top["id"] and reply["author_id"] == author.id

        listed = data_of(api.get(url))
        assert [(c["id"], c["reply_count"]) for c in listed["comments"]] == [(top["id"], 1)]
        assert listed["next_cursor"] is None
        replies = data_of(api.get(url, params={"parent_id": top["id"]}))["comments"]
        assert [c["id"] for c in replies] == [reply["id"]]

        assert_error(api.delete(f"/comments/{top['id']}", headers=stranger.headers), 403, "forbidden")
        assert_status_only(api.delete(f"/comments/{reply['id']}", headers=author.headers))  # its author
        assert_status_only(api.delete(f"/comments/{top['id']}", headers=commenter.headers))
        assert data_of(api.get(url))["comments"] == []
        assert_error(api.delete(f"/comments/{top['id']}", headers=commenter.headers), 404, "comment not found")
        assert_error(api.delete("/comments/999999999", headers=commenter.headers), 404, "comment not found")

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({}, "validation failed"),
            ({"content": ""}, "validation failed"),
            ({"content": "x" * 2001}, "validation failed"),
            ({"content": 5}, "invalid input"),
            ({"content": "ok", "parent_id": "1"}, "invalid input"),
            ({"content": "ok", "parent_id": 0}, "validation failed"),
        ],
    )
    def test_bad_body(self, api: httpx.Client, account: Account, body: dict[str, Any], message: str) -> None:
        assert_error(api.post("/posts/1/comments", json=body, headers=account.headers), 400, message)

    def test_unknown_post(self, api: httpx.Client, account: Account) -> None:
        response = api.post("/posts/999999999/comments", json={"content": "hi"}, headers=account.headers)
        assert_error(response, 404, "post not found")
        assert_error(api.get("/posts/999999999/comments"), 404, "post not found")

    def test_needs_a_token(self, api: httpx.Client) -> None:
        assert_error(api.post("/posts/1/comments", json={"content": "hi"}), 401, "unauthenticated")
        assert_error(api.delete("/comments/1"), 401, "unauthenticated")


BAD_IDS = [
    ("abc", "invalid input"),
    ("9223372036854775808", "invalid input"),
    ("0", "validation failed"),
    ("-5", "validation failed"),
]


@pytest.mark.parametrize(("raw", "message"), BAD_IDS)
@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("PUT", "/posts/{}/like", None),
        ("DELETE", "/posts/{}/like", None),
        ("GET", "/posts/{}/likes", None),
        ("POST", "/posts/{}/comments", {"content": "hi"}),
        ("GET", "/posts/{}/comments", None),
        ("DELETE", "/comments/{}", None),
    ],
)
def test_bad_path_ids(
    api: httpx.Client, account: Account, method: str, template: str, body: Any, raw: str, message: str
) -> None:
    response = api.request(method, template.format(raw), json=body, headers=account.headers)
    assert_error(response, 400, message)


def test_bad_comment_query(api: httpx.Client) -> None:
    assert_error(api.get("/posts/1/comments", params={"parent_id": "x"}), 400, "invalid input")
    assert_error(api.get("/posts/1/comments", params={"parent_id": "0"}), 400, "validation failed")
    assert_error(api.get("/posts/1/likes", params={"limit": "500"}), 400, "validation failed")


class TestViews:
    async def test_counted_once_per_user_and_window(
        self, api: httpx.Client, account: Account, other: Account, events_ready: None
    ) -> None:
        post_id = post(api, account, "viewed")
        await known_to_activity(api, post_id)
        first = data_of(api.post(f"/posts/{post_id}/view", headers=other.headers))
        assert first == {"counted": True, "view_count": 1}
        assert data_of(api.post(f"/posts/{post_id}/view", headers=other.headers)) == {"counted": False, "view_count": 1}
        assert data_of(api.post(f"/posts/{post_id}/view", headers=account.headers)) == {
            "counted": True,
            "view_count": 2,
        }

    def test_needs_a_token_and_a_valid_id(self, api: httpx.Client, account: Account) -> None:
        assert_error(api.post("/posts/1/view"), 401, "unauthenticated")
        assert_error(api.post("/posts/abc/view", headers=account.headers), 400, "invalid input")
        assert_error(api.post("/posts/0/view", headers=account.headers), 400, "validation failed")

    def test_an_unknown_post_is_404(self, api: httpx.Client, account: Account) -> None:
        response = api.post(f"/posts/{10**15}/view", headers=account.headers)
        assert response.status_code == 404, response.text
