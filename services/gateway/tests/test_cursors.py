"""Keyset cursors on the upstream list routes (posts list, followers, followees, notification feed,
user search). Without a cursor the answer is upstream's, byte for byte; `Link: <...>; rel="next"`
leads on by cursor in every mode, and cursor pages cover every item exactly once while new items
arrive at the head."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from gateway_contract import Account, Stack, assert_error, data_of

pytestmark = pytest.mark.contract

Register = Callable[..., Account]
LINK = re.compile(r'^<(?P<url>[^>]+)>; rel="next"$')


def next_link(response: httpx.Response) -> str | None:
    """The path and query of the next page, from the `Link` header."""
    header = response.headers.get("Link")
    if header is None:
        return None
    match = LINK.fullmatch(header)
    assert match, header
    url = match["url"]
    assert url.startswith("/api/v1/"), url
    return url.removeprefix("/api/v1")


def walk(
    api: httpx.Client,
    first: str,
    key: str,
    headers: dict[str, str] | None = None,
    between: Callable[[], object] | None = None,
) -> list[int]:
    """Every id of every page, following `Link` from `first`; `between` runs after each page."""
    seen: list[int] = []
    url: str | None = first
    pages = 0
    while url is not None:
        response = api.get(url, headers=headers)
        data = data_of(response)
        seen += [item["id"] for item in data[key]]
        cursor_mode = "cursor" in parse_qs(urlsplit(url).query)
        assert ("next_cursor" in data) == cursor_mode, data
        url = next_link(response)
        if cursor_mode:
            assert data["next_cursor"] == (parse_qs(urlsplit(url).query)["cursor"][0] if url else None)
        pages += 1
        assert pages < 50
        if between is not None and url is not None:
            between()
    return seen


def new_post(api: httpx.Client, author: Account, title: str = "p") -> int:
    return int(data_of(api.post("/posts", json={"title": title}, headers=author.headers), 201)["id"])


class TestPostsList:
    def test_pages_cover_every_post_once_while_posts_are_added(self, api: httpx.Client, account: Account) -> None:
        before = [new_post(api, account, f"p{i}") for i in range(7)]
        added: list[int] = []
        first = f"/posts/list?author_id={account.id}&limit=3"
        seen = walk(api, first, "posts", between=lambda: added.append(new_post(api, account, "late")))
        assert seen == before[::-1]  # newest first, each once; later posts are ahead of the walk
        assert len(added) == 2
        # The total still counts every match in cursor mode.
        page = data_of(api.get("/posts/list", params={"author_id": account.id, "limit": 3}))
        assert page["total"] == 9

    def test_without_a_cursor_the_body_is_upstreams(self, api: httpx.Client, stack: Stack, account: Account) -> None:
        for i in range(3):
            new_post(api, account, f"p{i}")
        for cursor in ({}, {"cursor": ""}):
            params = {"author_id": account.id, "limit": 2, "offset": 0, **cursor}
            response = api.get("/posts/list", params=params)
            upstream = httpx.get(f"{stack.urls['posts']}/posts", params={"author_id": account.id, "limit": 2})
            assert response.content == upstream.content
            assert set(data_of(response)) == {"posts", "total"}
            link = next_link(response)
            assert link is not None and parse_qs(urlsplit(link).query).keys() == {"author_id", "limit", "cursor"}

    def test_offset_still_works_and_the_last_page_has_no_link(self, api: httpx.Client, account: Account) -> None:
        ids = [new_post(api, account) for _ in range(3)][::-1]
        response = api.get("/posts/list", params={"author_id": account.id, "limit": 2, "offset": 2})
        assert [p["id"] for p in data_of(response)["posts"]] == ids[2:]
        assert "Link" not in response.headers

    def test_other_parameters_are_kept_in_the_link(self, api: httpx.Client, account: Account) -> None:
        for _ in range(3):
            new_post(api, account)
        response = api.get(
            "/posts/list",
            params={"author_id": account.id, "limit": 1, "offset": 1, "created_after": "2000-01-01T00:00:00Z"},
        )
        query = parse_qs(urlsplit(next_link(response) or "").query)
        assert query["created_after"] == ["2000-01-01T00:00:00Z"]
        assert query["limit"] == ["1"] and "offset" not in query


class TestRelations:
    @pytest.mark.parametrize("which", ["followers", "followees"])
    def test_pages_cover_everyone_once_while_follows_are_added(
        self, api: httpx.Client, register: Register, which: str
    ) -> None:
        hub = register()
        others = [register() for _ in range(5)]

        def relate(other: Account) -> None:
            fan, star = (other, hub) if which == "followers" else (hub, other)
            data_of(api.post("/relation/follow", json={"followee_id": star.id}, headers=fan.headers))

        for other in others:
            relate(other)
        late = iter([register(), register()])
        seen = walk(api, f"/relation/{hub.id}/{which}?limit=2", which, between=lambda: relate(next(late)))
        assert seen == [o.id for o in others][::-1]

    def test_without_a_cursor_the_shape_is_upstreams(self, api: httpx.Client, register: Register) -> None:
        star = register()
        for _ in range(3):
            data_of(api.post("/relation/follow", json={"followee_id": star.id}, headers=register().headers))
        response = api.get(f"/relation/{star.id}/followers", params={"limit": 2, "page": 1})
        assert set(data_of(response)) == {"followers", "total", "page", "limit"}
        assert data_of(response)["total"] == 3
        last = api.get(f"/relation/{star.id}/followers", params={"limit": 2, "page": 2})
        assert len(data_of(last)["followers"]) == 1 and "Link" not in last.headers


class TestNotificationFeed:
    def test_pages_cover_every_notification_once_while_more_arrive(
        self, api: httpx.Client, account: Account, other: Account
    ) -> None:
        def send() -> int:
            body = {"user_id": account.id, "type": "system", "payload": {"n": 1}}
            return int(data_of(api.post("/notification/send", json=body, headers=other.headers))["notification_id"])

        sent = [send() for _ in range(5)]
        seen = walk(api, "/notification/feed?limit=2", "notifications", headers=account.headers, between=send)
        assert seen == sent[::-1]
        page = data_of(api.get("/notification/feed", params={"limit": 2}, headers=account.headers))
        assert set(page) == {"notifications", "total", "page", "limit", "total_pages"}


class TestUserSearch:
    def test_pages_cover_every_match_once_while_users_register(self, api: httpx.Client, register: Register) -> None:
        tag = uuid.uuid4().hex[:10]
        users = [register(username=f"s{tag}{i}") for i in range(5)]
        late: list[int] = []
        seen = walk(
            api,
            f"/users/search?query={tag}&limit=2",
            "users",
            between=lambda: late.append(register(username=f"s{tag}x{len(late)}").id),
        )
        # Id order: users who register during the walk come after the cursor and are found too.
        assert seen == [u.id for u in users] + late
        assert set(data_of(api.get("/users/search", params={"query": tag})).keys()) == {"users", "total"}


class TestInvalidCursor:
    # Not base64url text of integers; "bm9wZQ" is "nope", "LTE6Mg" is "-1:2".
    @pytest.mark.parametrize("cursor", ["not-base64!", "bm9wZQ", "LTE6Mg", "x" * 201])
    def test_is_validation_failed(self, api: httpx.Client, account: Account, cursor: str) -> None:
        reads: list[tuple[str, dict[str, Any], dict[str, str]]] = [
            ("/posts/list", {}, {}),
            (f"/relation/{account.id}/followers", {}, {}),
            (f"/relation/{account.id}/followees", {}, {}),
            ("/notification/feed", {}, account.headers),
            ("/users/search", {"query": account.username}, {}),
        ]
        for path, params, headers in reads:
            response = api.get(path, params={**params, "cursor": cursor}, headers=headers)
            assert_error(response, 400, "validation failed")

    def test_a_cursor_of_another_list_is_validation_failed(self, api: httpx.Client, account: Account) -> None:
        # "MTox" is "1:1": a (time, id) cursor, not a user search's (id).
        response = api.get("/users/search", params={"query": account.username, "cursor": "MTox"})
        assert_error(response, 400, "validation failed")
