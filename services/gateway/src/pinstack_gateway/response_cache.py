"""A one-second cache of the hottest public reads, in front of the router.

`GET /api/v1/users/{user_id}`, `/users/username/{username}`, `/posts/{post_id}` and `/posts/list`
answer the same bytes to every caller (nothing in them depends on who asks), and they are what a
social network reads most. Their 200 answers are kept in this process for `response_cache_seconds` (1 s; 0 turns
the cache off), counted from when the request that read them arrived, and answered again without
routing, dependencies or a call to the service: on a hit the gateway does what a trivial endpoint
does.

Freshness, in this order of strength:
- A write through the gateway (anything but a 4xx, which changed nothing) forgets its family before
  its own answer leaves: a write under `/users` or `/auth` the users, one under `/posts` the posts.
  A read in flight across that write does not store what it read (a generation per family). So a
  client reads its own writes, and everyone's, through this process.
- Every other gateway process hears of the write on a Redis channel, published before the
  writer's answer leaves; a process that is not subscribed (Redis down, reconnecting) serves no
  entry, only stores them. The message is in the other process's socket before the writer's
  client can send its next request there, so both are read in the same turn of that process's
  event loop at the latest; a hit yields to the loop once before it answers, which lets the
  listener (woken in that turn) forget first.
- A caller's home feed (`GET /api/v1/feed`) is kept per token, in the posts family: a post
  written, edited or deleted, a like or a comment through the gateway forgets every feed page as
  it forgets the posts. A hit checks its token as the route does (deps.authenticate: the
  signature once per token, expiry, ended sessions at most one Redis read per 0.5 s); a token
  that fails is answered by the route, as if nothing were kept. What reaches a feed only
  through Kafka (a post fanned out, a follow applied) reaches it as late as it does the feed
  service, and the TTL later at most.
- Shortly before an entry expires (at a random point of its last third, so that entries filled
  together do not expire together) the request that finds it is answered from it like the others,
  and the entry is read again in the background, through the same route with the same request:
  under load no client waits for a refresh, which otherwise put every expiry's read (a few per
  cent of the requests) in the tail latency. Should the entry expire before that read ends, the
  requests for it wait for that read, as below.
- A key's entry once expired or forgotten, the first request to miss reads it again and the
  others that arrive meanwhile wait for that read instead of all asking the services at once (a
  herd that, under load, makes each read slower, so that the next expiry finds it still running:
  a feedback loop that took two gateway processes down to 5 % of their feed throughput). Only a
  request that arrived with no write since that read began is given its answer; any other reads
  for itself.
- What changes without a write through the gateway is seen by everyone within the TTL of its
  change, as is anything a lost message missed: what the services apply from Kafka events (a
  post's copy of its author's name, an account deletion's cascade) is eventually consistent
  already, and the cache adds at most a second to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinstack_gateway.deps import authenticate
from pinstack_kit.errors import ServiceUnavailable, Unauthorized
from pinstack_kit.observability import CACHE_REQUESTS, OutageLog

log = logging.getLogger("pinstack.gateway.response_cache")

USERS, POSTS = "users", "posts"
# The route templates whose answers are kept, and the family a write to them belongs to.
CACHED = {
    "/api/v1/users/{user_id}": USERS,
    "/api/v1/users/username/{username}": USERS,
    "/api/v1/posts/{post_id}": POSTS,
    "/api/v1/posts/list": POSTS,  # keyed by its query too, like every entry
    "/api/v1/feed": POSTS,  # a page's counters are the posts family's too
}
# Routes whose answer depends on the caller: keyed by the Authorization header too.
PER_CALLER = frozenset({"/api/v1/feed"})
# Writes under /auth that change no user's body (sessions only).
_SESSION_ONLY = frozenset({"/api/v1/auth/login", "/api/v1/auth/refresh", "/api/v1/auth/logout"})
_READS = frozenset({"GET", "HEAD", "OPTIONS"})
# A bound on the process's memory whatever keys clients ask for (every query string of
# /posts/list is a key of its own): at most 4,096 entries of at most 32 KiB, 128 MiB, while the
# hot keys of one second are a few hundred.
MAX_ENTRIES = 4096
MAX_BODY_BYTES = 32 * 1024
RECONNECT_SECONDS = 1.0

FORGOTTEN = Counter("gateway_response_cache_forgotten_total", "Response cache families forgotten", ["origin"])


def written_family(method: str, path: str) -> str | None:
    """The family a request that may have written belongs to, or None for a read."""
    if method in _READS:
        return None
    if path.startswith(("/api/v1/users", "/api/v1/auth/")) and path not in _SESSION_ONLY:
        return USERS
    if path.startswith(("/api/v1/posts", "/api/v1/comments")):  # likes and comments: a feed's counters
        return POSTS
    return None


@dataclass(slots=True)
class Entry:
    expires: float
    family: str
    route: Any  # the APIRoute that answered: the metrics and log lines label a hit with it
    headers: list[tuple[bytes, bytes]]
    body: bytes
    refresh_at: float = 0.0  # from then on one request reads it again while the others still hit
    generation: int = 0  # its family's when it was read: a write since makes it stale


Key = tuple[str, bytes, bytes]  # path, query string, Authorization (b"" on public routes)


@dataclass(slots=True)
class Read:
    """A read in flight of a key known to be kept, which the requests for it wait for."""

    generation: dict[str, int]  # the families' when it began
    done: asyncio.Future[Entry | None]  # what it kept, or None: read for yourself


class ResponseCache:
    """The entries and their invalidation (one per process); `ResponseCacheLayer` serves them."""

    def __init__(self, seconds: float, channel: str) -> None:
        self.seconds = seconds
        self.channel = channel
        self.entries: dict[Key, Entry] = {}
        self.generation = {USERS: 0, POSTS: 0}
        self.subscribed = False  # hits only while other processes' writes reach this one
        self.reads: dict[Key, Read] = {}
        # Background refreshes (ResponseCacheLayer): held, since the loop keeps weak references
        # only, and cancelled by the lifespan before the clients they use are closed.
        self.refreshes: set[asyncio.Task[None]] = set()
        self.instance = f"{os.getpid()}-{id(self)}"  # our own messages come back to us too
        self._outage = OutageLog(log, "redis (response cache invalidations)")

    @property
    def enabled(self) -> bool:
        return self.seconds > 0

    def get(self, key: Key) -> Entry | None:
        """The entry to answer with, or None: read it (again)."""
        return self._find(key)[0]

    def _find(self, key: Key) -> tuple[Entry | None, bool, bool]:
        """(`get`'s answer, whether the key is known to be kept, whether it is due to be read
        again in the background: past its `refresh_at`, and no read of it in flight)."""
        entry = self.entries.get(key)
        if entry is None or not self.subscribed:
            return None, False, False
        now = time.monotonic()
        if not self._current(entry, now):
            del self.entries[key]
            return None, True, False
        return entry, True, now >= entry.refresh_at and key not in self.reads

    async def lookup(self, key: Key) -> tuple[Entry | None, Read | None]:
        """(the entry to answer with, or None: read it; the `Read` this request then leads, to be
        `finish`ed, if others may wait for it: with an entry, a refresh to run in the background).
        Once an invalidation read in this loop turn went first (module doc); a hit counted."""
        if key in self.entries or key in self.reads:
            await asyncio.sleep(0)
        entry, known, due = self._find(key)
        led = None
        if due:
            led = self._lead(key)
        elif entry is None:
            read = self.reads.get(key)
            if read is not None and read.generation == self.generation:
                entry = await asyncio.shield(read.done)  # None: it kept nothing, read alone
            elif known:
                return None, self._lead(key)
        if entry is not None:
            CACHE_REQUESTS.labels("gateway", "hit").inc()
        return entry, led

    def _lead(self, key: Key) -> Read:
        """A read of `key` begins, which the requests for it may wait for."""
        read = Read(dict(self.generation), asyncio.get_running_loop().create_future())
        self.reads[key] = read
        return read

    def finish(self, key: Key, read: Read | None, kept: Entry | None) -> None:
        """The end of a read others may wait for: they are answered with what it kept, if anything."""
        if read is None:
            return
        if self.reads.get(key) is read:
            del self.reads[key]
        if not read.done.done():
            read.done.set_result(kept)

    def keep(self, key: Key, entry: Entry, generation: int, outcome: str = "miss") -> bool:
        """A miss (or a refresh) read afresh: counted, and kept if still current (`put`)."""
        CACHE_REQUESTS.labels("gateway", outcome).inc()
        return self.put(key, entry, generation)

    def put(self, key: Key, entry: Entry, generation: int) -> bool:
        """Whether `entry` was kept."""
        if self.generation[entry.family] != generation:
            return False  # a write happened while it was read: it may be older than the write
        if len(entry.body) > MAX_BODY_BYTES:
            return False
        kept = self.entries.get(key)
        if kept is not None and kept.expires > entry.expires:
            return False  # a read that started later has stored already
        entry.generation = generation
        entry.refresh_at = entry.expires - self.seconds * random.uniform(0.1, 0.33)  # noqa: S311 - spread, not secret
        if len(self.entries) >= MAX_ENTRIES:
            now = time.monotonic()
            self.entries = {k: e for k, e in self.entries.items() if self._current(e, now)}
            if len(self.entries) >= MAX_ENTRIES:
                return False
        self.entries[key] = entry
        return True

    def _current(self, entry: Entry, now: float) -> bool:
        return entry.expires > now and entry.generation == self.generation[entry.family]

    def forget_here(self, family: str) -> None:
        """O(1) on the write path: the family's entries are stale from now on, and are dropped
        when next looked up (or when the cache is full)."""
        self.generation[family] += 1

    async def forget(self, family: str, redis: Redis) -> None:
        """After a write: here at once, then every other process (one PUBLISH)."""
        self.forget_here(family)
        FORGOTTEN.labels("write").inc()
        try:
            await redis.publish(self.channel, f"{family} {self.instance}")
        except (RedisError, OSError) as exc:
            # Not subscribed either, most likely, so the others serve no entry; else the TTL.
            self._outage.down(exc)
        else:
            self._outage.up()

    async def listen(self, redis: Redis) -> None:
        """The lifespan's background task: other processes' writes, for as long as it runs."""
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    for family in self.generation:  # writes may have been missed
                        self.forget_here(family)
                    self.subscribed = True
                    self._outage.up()
                    while True:
                        message = await pubsub.get_message(timeout=RECONNECT_SECONDS)
                        if message is not None:
                            self._heard(message["data"])
            except (RedisError, OSError) as exc:
                self._outage.down(exc)
            finally:
                self.subscribed = False
            await asyncio.sleep(RECONNECT_SECONDS)

    def _heard(self, data: bytes) -> None:
        family, _, sender = data.decode("utf-8", "replace").partition(" ")
        if family in self.generation and sender != self.instance:
            self.forget_here(family)
            FORGOTTEN.labels("peer").inc()


def _key(scope: Scope) -> Key:
    path = scope["path"]
    caller = b""
    if path in PER_CALLER:
        caller = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
    return (path, scope["query_string"], caller)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _discard(message: Message) -> None:
    pass


class ResponseCacheLayer:
    """The ASGI layer just in front of the router (inside the request id, metrics and headers)."""

    def __init__(self, app: ASGIApp, cache: ResponseCache, state: Any) -> None:
        self.app = app
        self.cache = cache
        self.state = state  # the app state: its Redis client exists once the lifespan ran

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.cache.enabled:
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "GET":
            await self._read(scope, receive, send)
        elif (family := written_family(method, scope["path"])) is not None:
            await self._write(family, scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _read(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _key(scope)
        entry, read = await self.cache.lookup(key)
        if entry is not None and await self._caller_still_valid(key):
            if read is not None:
                self._refresh(key, scope, read)
            scope["route"] = entry.route
            await send({"type": "http.response.start", "status": 200, "headers": entry.headers})
            await send({"type": "http.response.body", "body": entry.body})
            return
        await self._read_and_finish(key, read, scope, receive, send)

    async def _read_and_finish(
        self, key: Key, read: Read | None, scope: Scope, receive: Receive, send: Send, outcome: str = "miss"
    ) -> None:
        kept = None
        try:
            kept = await self._read_through(key, scope, receive, send, outcome)
        finally:
            self.cache.finish(key, read, kept)

    def _refresh(self, key: Key, scope: Scope, read: Read) -> None:
        """Read `key` again in the background: the same GET through the route, its answer kept
        (or the entry dropped, as on a miss, when the answer is no longer a 200)."""
        replay = {**scope, "state": dict(scope.get("state", {}))}  # the layers inside write to theirs
        task = asyncio.create_task(self._read_and_finish(key, read, replay, _no_body, _discard, "refresh"))
        self.cache.refreshes.add(task)
        task.add_done_callback(self._refreshed)

    def _refreshed(self, task: asyncio.Task[None]) -> None:
        self.cache.refreshes.discard(task)
        if not task.cancelled() and (failure := task.exception()) is not None:
            log.warning("refreshing a cached answer failed: %r", failure)

    async def _read_through(
        self, key: Key, scope: Scope, receive: Receive, send: Send, outcome: str = "miss"
    ) -> Entry | None:
        """The app's answer, passed on and kept if it may be; the entry kept, if any."""
        arrived = time.monotonic()
        generations = dict(self.cache.generation)
        status, headers = 0, []
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            nonlocal status, headers
            if message["type"] == "http.response.start":
                # copied now: the layers outside add their own headers to this same message
                status, headers = message["status"], list(message.get("headers", ()))
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, keep)
        family = CACHED.get(getattr(scope.get("route"), "path", ""))
        if family is None:
            return None
        if status != 200:  # gone (a 404 after a deletion), or failing: nobody reads the old answer
            self.cache.entries.pop(key, None)
            return None
        entry = Entry(arrived + self.cache.seconds, family, scope["route"], headers, b"".join(chunks))
        return entry if self.cache.keep(key, entry, generations[family], outcome) else None

    async def _caller_still_valid(self, key: Key) -> bool:
        """A per-caller entry's token still passes the route's check (public entries: no token)."""
        if key[0] not in PER_CALLER:
            return True
        try:
            await authenticate(self.state, key[2].decode("latin-1") or None)
        except (Unauthorized, ServiceUnavailable):
            return False
        return True

    async def _write(self, family: str, scope: Scope, receive: Receive, send: Send) -> None:
        forgotten = False

        async def forget_first(message: Message) -> None:
            nonlocal forgotten
            if message["type"] == "http.response.start" and not 400 <= message["status"] < 500:
                forgotten = True
                await self.cache.forget(family, self.state.redis)
            await send(message)

        try:
            await self.app(scope, receive, forget_first)
        except BaseException:
            if not forgotten:  # the 500 is rendered outside this layer; the write may have happened
                await self.cache.forget(family, self.state.redis)
            raise
