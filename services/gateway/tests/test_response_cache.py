"""The gateway's one-second cache of the hottest public reads (response_cache.py): a hit answers
the same bytes, a writer reads its write at once through any replica, everyone else within a
second; without its invalidations (Redis down) a process serves no entry."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from gateway_contract import PASSWORD, Account, Stack, assert_status_only, cache_hits, data_of, unique_name
from starlette.types import Message, Receive, Scope, Send

from pinstack_gateway.response_cache import (
    MAX_BODY_BYTES,
    MAX_ENTRIES,
    POSTS,
    USERS,
    Entry,
    ResponseCache,
    ResponseCacheLayer,
    _key,
    written_family,
)
from pinstack_testing import eventually


def post_by(api: httpx.Client, author: Account) -> int:
    body = {"title": "cached", "content": "a post read through the cache", "tags": ["cache"]}
    return int(data_of(api.post("/posts", json=body, headers=author.headers), 201)["id"])


def rename(api: httpx.Client, account: Account, full_name: str) -> None:
    data_of(api.put("/users", json={"id": account.id, "full_name": full_name}, headers=account.headers))


@pytest.mark.contract
class TestResponseCache:
    def test_a_repeated_read_is_the_same_bytes_from_the_cache(
        self, api: httpx.Client, server: httpx.Client, account: Account
    ) -> None:
        before = cache_hits(server)
        first, second = api.get(f"/users/{account.id}"), api.get(f"/users/{account.id}")
        assert first.status_code == second.status_code == 200
        assert second.content == first.content
        assert second.headers["content-type"] == first.headers["content-type"] == "application/json"
        assert second.headers["x-request-id"] != first.headers["x-request-id"]
        assert sorted(second.headers.keys()) == sorted(first.headers.keys())  # each once, none kept from the first
        assert cache_hits(server) >= before + 1

    async def test_a_writer_reads_its_writes_at_once(self, api: httpx.Client, account: Account) -> None:
        mine = {"author_id": account.id, "limit": 5}
        for _ in range(2):  # cached: an empty list
            assert data_of(api.get("/posts/list", params=mine))["posts"] == []
        post = post_by(api, account)
        assert [p["id"] for p in data_of(api.get("/posts/list", params=mine))["posts"]] == [post]
        for _ in range(2):  # cached
            data_of(api.get(f"/users/{account.id}"))
            data_of(api.get(f"/users/username/{account.username}"))
            data_of(api.get(f"/posts/{post}"))
        rename(api, account, "Renamed Once")
        assert data_of(api.get(f"/users/{account.id}"))["full_name"] == "Renamed Once"
        assert data_of(api.get(f"/users/username/{account.username}"))["full_name"] == "Renamed Once"
        # a post's copy of its author's name follows the user_updated event, the cache adds <= 1 s
        await eventually(lambda: data_of(api.get(f"/posts/{post}"))["author"].get("full_name") == "Renamed Once")
        data_of(api.put(f"/posts/{post}", json={"title": "edited"}, headers=account.headers))
        assert data_of(api.get(f"/posts/{post}"))["title"] == "edited"
        assert_status_only(api.delete(f"/posts/{post}", headers=account.headers))
        assert api.get(f"/posts/{post}").status_code == 404

    def test_once_an_entry_reads_404_it_is_not_served_again(
        self, api: httpx.Client, stack: Stack, account: Account
    ) -> None:
        post = post_by(api, account)
        data_of(api.get(f"/posts/{post}"))
        # deleted behind the gateway: the entry lives on until it is read again or expires
        gone = httpx.request("DELETE", f"{stack.urls['posts']}/posts/{post}", params={"user_id": account.id})
        assert gone.status_code in (200, 204), gone.text
        seen = [api.get(f"/posts/{post}").status_code for _ in range(60) if not time.sleep(0.025)]
        assert 404 in seen, seen
        assert seen[seen.index(404) :] == [404] * (len(seen) - seen.index(404)), seen

    def test_every_replica_forgets_a_write_made_through_another(
        self, api: httpx.Client, replica: httpx.Client, account: Account
    ) -> None:
        stale = []
        for step in range(50):
            for _ in range(2):
                data_of(replica.get(f"/users/{account.id}"))
            rename(api, account, f"Name {step}")
            seen = data_of(replica.get(f"/users/{account.id}"))["full_name"]
            if seen != f"Name {step}":
                stale.append((step, seen))
        assert stale == []

    def test_a_change_behind_the_gateway_is_seen_within_a_second(
        self, api: httpx.Client, stack: Stack, account: Account
    ) -> None:
        rename(api, account, "Before")
        data_of(api.get(f"/users/{account.id}"))
        changed = time.monotonic()
        patched = httpx.patch(f"{stack.urls['users']}/users/{account.id}", json={"full_name": "Changed Behind"})
        assert patched.status_code == 200, patched.text
        while data_of(api.get(f"/users/{account.id}"))["full_name"] != "Changed Behind":
            assert time.monotonic() - changed < 1.5, "a change behind the gateway was served stale past the TTL"
            time.sleep(0.05)

    def test_an_answer_that_is_not_200_is_not_kept(self, api: httpx.Client, stack: Stack) -> None:
        name = unique_name()
        for _ in range(2):
            assert api.get(f"/users/username/{name}").status_code == 404
        # made behind the gateway: no write through it forgets anything
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        made = httpx.post(f"{stack.urls['users']}/users", json=body)
        assert made.status_code == 201, made.text
        assert data_of(api.get(f"/users/username/{name}"))["username"] == name


def entry(family: str, expires_in: float = 1.0) -> Entry:
    return Entry(time.monotonic() + expires_in, family, None, [], b"{}")


class TestEntries:
    """The cache's own rules, without a server."""

    def cache(self, seconds: float = 1.0) -> ResponseCache:
        cache = ResponseCache(seconds, "test")
        cache.subscribed = True
        return cache

    def test_an_entry_is_served_until_it_expires(self) -> None:
        cache = self.cache(0.2)
        cache.put(("/a", b"", b""), entry(USERS, 0.2), cache.generation[USERS])
        assert cache.get(("/a", b"", b"")) is not None
        time.sleep(0.21)
        assert cache.get(("/a", b"", b"")) is None

    async def test_shortly_before_it_expires_one_request_reads_it_again_and_all_still_hit(self) -> None:
        cache, key = self.cache(0.3), ("/a", b"", b"")
        cache.put(key, entry(USERS, 0.3), cache.generation[USERS])
        found, read = await cache.lookup(key)
        assert found is not None and read is None  # in its first two thirds
        time.sleep(0.27)  # past the last third's start, before it expires
        found, read = await cache.lookup(key)
        assert found is not None and read is not None  # answered, and refreshes it in the background
        assert await cache.lookup(key) == (found, None)  # the others are answered, no second refresh
        fresh = entry(USERS, 0.3)
        cache.put(key, fresh, read.generation[USERS])
        cache.finish(key, read, fresh)
        time.sleep(0.05)
        assert cache.get(key) is fresh  # the refreshed entry, a TTL of its own

    async def test_the_request_that_refreshes_an_entry_does_not_wait_for_the_read(self) -> None:
        cache = self.cache(1.0)
        calls, release = 0, asyncio.Event()
        route = SimpleNamespace(path="/api/v1/users/{user_id}")

        async def service(scope: Scope, receive: Receive, send: Send) -> None:
            nonlocal calls
            calls += 1
            scope["route"] = route
            if calls > 1:
                await release.wait()  # the refresh hangs until the test lets it go
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": str(calls).encode()})

        layer = ResponseCacheLayer(service, cache, state=None)

        async def get() -> bytes:
            body: list[bytes] = []

            async def send(message: Message) -> None:
                if message["type"] == "http.response.body":
                    body.append(message["body"])

            async def receive() -> Message:
                return {"type": "http.request", "body": b"", "more_body": False}

            scope = {"type": "http", "method": "GET", "path": "/api/v1/users/1", "query_string": b"", "headers": []}
            await asyncio.wait_for(layer(scope, receive, send), 0.5)
            return b"".join(body)

        assert await get() == b"1"  # a miss: read and kept
        await asyncio.sleep(0.9)  # into the entry's last third
        assert await get() == b"1"  # from the entry at once, while the refresh waits
        assert calls == 2 and len(cache.refreshes) == 1
        assert await get() == b"1"
        release.set()
        await asyncio.gather(*cache.refreshes)
        assert await get() == b"2" and calls == 2  # the refreshed answer, kept

    def test_an_older_read_does_not_replace_a_newer_one(self) -> None:
        cache = self.cache()
        newer = entry(USERS, 1.0)
        cache.put(("/u", b"", b""), newer, cache.generation[USERS])
        cache.put(("/u", b"", b""), entry(USERS, 0.9), cache.generation[USERS])
        assert cache.get(("/u", b"", b"")) is newer

    def test_a_read_in_flight_across_a_write_is_not_kept(self) -> None:
        cache = self.cache()
        read_started = cache.generation[POSTS]
        cache.forget_here(POSTS)
        cache.put(("/p", b"", b""), entry(POSTS), read_started)
        assert cache.get(("/p", b"", b"")) is None

    def test_a_write_forgets_its_own_family(self) -> None:
        cache = self.cache()
        cache.put(("/u", b"", b""), entry(USERS), cache.generation[USERS])
        cache.put(("/p", b"", b""), entry(POSTS), cache.generation[POSTS])
        cache.forget_here(POSTS)
        assert cache.get(("/u", b"", b"")) is not None and cache.get(("/p", b"", b"")) is None
        cache.put(("/p", b"", b""), entry(POSTS), cache.generation[POSTS])
        cache.forget_here(USERS)
        assert cache.get(("/u", b"", b"")) is None and cache.get(("/p", b"", b"")) is not None

    def test_memory_is_bounded(self) -> None:
        cache = self.cache()
        big = Entry(time.monotonic() + 1, POSTS, None, [], b"x" * (MAX_BODY_BYTES + 1))
        cache.put(("/big", b"", b""), big, cache.generation[POSTS])
        assert cache.get(("/big", b"", b"")) is None
        for n in range(MAX_ENTRIES + 10):
            cache.put((f"/p/{n}", b"", b""), entry(POSTS), cache.generation[POSTS])
        assert len(cache.entries) == MAX_ENTRIES

    def test_not_subscribed_serves_nothing(self) -> None:
        cache = self.cache()
        cache.put(("/u", b"", b""), entry(USERS), cache.generation[USERS])
        cache.subscribed = False
        assert cache.get(("/u", b"", b"")) is None

    def test_peers_messages_forget_and_our_own_are_ignored(self) -> None:
        cache = self.cache()
        cache.put(("/u", b"", b""), entry(USERS), cache.generation[USERS])
        cache._heard(f"{USERS} {cache.instance}".encode())
        assert cache.get(("/u", b"", b"")) is not None
        cache._heard(f"{USERS} another-process".encode())
        assert cache.get(("/u", b"", b"")) is None

    async def test_requests_for_an_expired_key_wait_for_one_read_of_it(self) -> None:
        cache, key = self.cache(0.05), ("/u", b"", b"")
        cache.put(key, entry(USERS, 0.05), cache.generation[USERS])
        time.sleep(0.06)
        found, read = await cache.lookup(key)
        assert found is None and read is not None  # this one reads it again, for the others too
        waiters = [asyncio.create_task(cache.lookup(key)) for _ in range(3)]
        await asyncio.sleep(0.01)
        assert not any(w.done() for w in waiters)
        fresh = entry(USERS)
        assert cache.put(key, fresh, read.generation[USERS])
        cache.finish(key, read, fresh)
        assert [await w for w in waiters] == [(fresh, None)] * 3
        assert key not in cache.reads

    async def test_a_request_after_a_write_does_not_wait_for_a_read_begun_before_it(self) -> None:
        cache, key = self.cache(0.05), ("/p", b"", b"")
        cache.put(key, entry(POSTS, 0.05), cache.generation[POSTS])
        time.sleep(0.06)
        _, read = await cache.lookup(key)
        assert read is not None
        cache.forget_here(POSTS)
        found, own = await asyncio.wait_for(cache.lookup(key), 1)  # reads for itself at once
        assert found is None and own is None
        cache.finish(key, read, None)

    async def test_when_the_read_keeps_nothing_each_waiter_reads_for_itself(self) -> None:
        cache, key = self.cache(0.05), ("/u", b"", b"")
        cache.put(key, entry(USERS, 0.05), cache.generation[USERS])
        time.sleep(0.06)
        _, read = await cache.lookup(key)
        waiter = asyncio.create_task(cache.lookup(key))
        await asyncio.sleep(0.01)
        cache.finish(key, read, None)  # a 404, a 500, a write meanwhile
        assert await waiter == (None, None)

    def test_a_feed_page_is_keyed_by_its_token_and_public_reads_are_not(self) -> None:
        def scope(path: str, token: bytes) -> dict[str, Any]:
            return {"path": path, "query_string": b"limit=2", "headers": [(b"authorization", token)]}

        assert _key(scope("/api/v1/feed", b"Bearer a")) == ("/api/v1/feed", b"limit=2", b"Bearer a")
        assert _key(scope("/api/v1/feed", b"Bearer a")) != _key(scope("/api/v1/feed", b"Bearer b"))
        assert _key(scope("/api/v1/posts/list", b"Bearer a")) == _key(scope("/api/v1/posts/list", b"Bearer b"))

    @pytest.mark.parametrize(
        ("method", "path", "family"),
        [
            ("GET", "/api/v1/users/1", None),
            ("PUT", "/api/v1/users", USERS),
            ("PUT", "/api/v1/users/avatar", USERS),
            ("DELETE", "/api/v1/users/7", USERS),
            ("POST", "/api/v1/auth/register", USERS),
            ("POST", "/api/v1/auth/login", None),
            ("POST", "/api/v1/auth/logout", None),
            ("PUT", "/api/v1/posts/3", POSTS),
            ("POST", "/api/v1/posts", POSTS),
            ("POST", "/api/v1/relation/follow", None),
            ("PUT", "/api/v1/posts/3/like", POSTS),  # a feed page shows its counters
            ("DELETE", "/api/v1/comments/9", POSTS),
        ],
    )
    def test_which_writes_forget_what(self, method: str, path: str, family: str | None) -> None:
        assert written_family(method, path) == family
