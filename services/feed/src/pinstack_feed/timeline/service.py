"""Home timelines: fan-out on write into a capped Redis sorted set per follower, fan-out on read
for celebrities, rebuilt from the Postgres projections when Redis lost a timeline.

A timeline entry is (score = created_at in epoch milliseconds, member = post id). Pages are in
(score, id) order, newest first; the cursor is the last entry shown, so posts arriving at the head
never shift the following pages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import Counter, Histogram
from redis.asyncio import Redis
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_feed.config import Settings
from pinstack_feed.timeline import repository
from pinstack_kit import cursors
from pinstack_kit.db import after_commit, defer, run_deferred, seal
from pinstack_kit.envelope import rfc3339
from pinstack_kit.errors import BadRequest
from pinstack_kit.redis import REDIS_DOWN

log = logging.getLogger(__name__)

FANOUT_WRITES = Counter("feed_fanout_timelines_total", "Timelines written by fan-out", ["event"])
FANOUT_SECONDS = Histogram(
    "feed_fanout_duration_seconds",
    "Time to write an event into every affected timeline (the events of a consumer transaction go together)",
    ["event"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
FANOUT_SKIPPED = Counter("feed_fanout_skipped_total", "Posts of celebrities left to fan-out on read")
FANOUT_ERRORS = Counter("feed_fanout_errors_total", "Fan-outs lost because Redis was unavailable", ["event"])
REBUILDS = Counter("feed_timeline_rebuilds_total", "Timelines rebuilt from Postgres", ["reason"])
PAGES = Counter("feed_pages_total", "Feed pages served, by where the entries came from", ["source"])

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PIPELINE_CHUNK = 500  # timelines per pipeline: bounded memory, few round trips
_ADDS = "feed_adds"  # the timeline adds waiting for the commit
_NEW_POSTS = "feed_new_posts"  # the post_created events waiting for their statement


def score_of(ts: datetime) -> int:
    return (ts - EPOCH) // timedelta(milliseconds=1)


def time_of(score: int) -> datetime:
    return EPOCH + timedelta(milliseconds=score)


@dataclass(frozen=True, order=True)
class Entry:
    score: int
    post_id: int

    @classmethod
    def from_row(cls, row: Row) -> Entry:
        return cls(score_of(row.created_at), row.id)


def encode_cursor(entry: Entry) -> str:
    return cursors.encode(entry.score, entry.post_id)


def decode_cursor(cursor: str) -> Entry:
    score, post_id = cursors.decode(cursor, 2)
    if post_id < 1 or score >= 2**53:  # a sorted-set score is a double: exact below 2**53
        raise BadRequest()
    return Entry(score, post_id)


def newest_first(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(set(entries), reverse=True)


class Timelines:
    """The Redis side: `feed:timeline:{user}` (the sorted set) and `feed:built:{user}` (set once
    the timeline holds everything the projections imply; without it a read rebuilds first)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.prefix = settings.key_prefix
        self.cap = settings.timeline_cap

    def key(self, user_id: int) -> str:
        return f"{self.prefix}timeline:{user_id}"

    def built_key(self, user_id: int) -> str:
        return f"{self.prefix}built:{user_id}"

    async def add(self, writes: Iterable[tuple[Sequence[int], Sequence[Entry]]]) -> None:
        """For each (timelines, entries) of `writes`, ZADD the entries to those timelines; one ZADD
        and one trim to the cap per timeline, whatever the number of writes, in pipelines."""
        merged: dict[int, dict[str, int]] = {}
        for user_ids, entries in writes:
            for user_id in user_ids:
                merged.setdefault(user_id, {}).update((str(e.post_id), e.score) for e in entries)
        users = [user_id for user_id, mapping in merged.items() if mapping]
        for start in range(0, len(users), PIPELINE_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in users[start : start + PIPELINE_CHUNK]:
                    pipe.zadd(self.key(user_id), merged[user_id])
                    pipe.zremrangebyrank(self.key(user_id), 0, -self.cap - 1)
                await pipe.execute()

    async def remove(self, user_ids: Sequence[int], post_ids: Sequence[int]) -> None:
        if not user_ids or not post_ids:
            return
        members = [str(post_id) for post_id in post_ids]
        for start in range(0, len(user_ids), PIPELINE_CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for user_id in user_ids[start : start + PIPELINE_CHUNK]:
                    for first in range(0, len(members), 1000):
                        pipe.zrem(self.key(user_id), *members[first : first + 1000])
                await pipe.execute()

    async def fill(self, user_id: int, entries: Sequence[Entry], *, replace: bool) -> None:
        """Store a rebuilt timeline and mark it built, atomically. Without `replace` the entries
        are merged into what is there, so a fan-out that landed during the rebuild is kept."""
        async with self.redis.pipeline(transaction=True) as pipe:
            if replace:
                pipe.delete(self.key(user_id))
            if entries:
                pipe.zadd(self.key(user_id), {str(e.post_id): e.score for e in entries})
                pipe.zremrangebyrank(self.key(user_id), 0, -self.cap - 1)
            pipe.set(self.built_key(user_id), b"1")
            await pipe.execute()

    async def forget(self, user_id: int) -> None:
        await self.redis.delete(self.key(user_id), self.built_key(user_id))

    async def page(self, user_id: int, before: Entry | None, count: int) -> tuple[bool, bool, list[Entry]]:
        """(built, full, up to `count` entries strictly before `before`) in one round trip, and a
        second only when a group of equal scores straddles the end of the page. `full` says the
        timeline reached its cap, so older entries may exist only in Postgres."""
        key = self.key(user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.exists(self.built_key(user_id))
            pipe.zcard(key)
            top = "+inf" if before is None else f"({before.score}"
            pipe.zrevrangebyscore(key, top, "-inf", start=0, num=count, withscores=True)
            if before is not None:  # entries sharing the cursor's score, ordered by id below
                pipe.zrangebyscore(key, before.score, before.score, withscores=True)
            results: list[Any] = await pipe.execute()
        built, size, lower = bool(results[0]), int(results[1]), _entries(results[2])
        ties = [] if before is None else [e for e in _entries(results[3]) if e.post_id < before.post_id]
        if len(lower) == count:
            # Redis orders equal scores by member text ("9" after "10"): take the lowest score's
            # whole group, so the numeric id order decides which of its entries are on this page.
            low = lower[-1].score
            group = _entries(await self.redis.zrangebyscore(key, low, low, withscores=True))
            lower = [e for e in lower if e.score != low] + group
        return built, size >= self.cap, newest_first([*ties, *lower])[:count]


def _entries(pairs: Iterable[Any]) -> list[Entry]:
    return [Entry(int(score), int(member)) for member, score in pairs]


def parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def _ms(ts: datetime) -> datetime:
    """Timeline scores are milliseconds: the projection keeps the same precision, so a cursor
    compares the same way in Redis and in Postgres."""
    return ts.replace(microsecond=ts.microsecond // 1000 * 1000)


def _timelines(audience: Row) -> list[int]:
    """The timelines an author's post is written to: the author's own always (a home feed shows
    what you posted, as Mastodon's does); every follower's unless the author is a celebrity, whose
    posts are merged at read time (the repository's audience has no followers then)."""
    return [audience.author_id, *audience.followers]


class FeedService:
    def __init__(self, session: AsyncSession, redis: Redis, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.timelines = Timelines(redis, settings)

    # ---------------------------------------------------------------------------------- reads

    async def home(self, user_id: int, cursor: str | None, limit: int) -> dict[str, Any]:
        before = decode_cursor(cursor) if cursor else None
        entries = await self._entries(user_id, before, limit + 1)
        page, more = entries[:limit], len(entries) > limit
        return {
            "items": [{"post_id": e.post_id, "created_at": rfc3339(time_of(e.score))} for e in page],
            "next_cursor": encode_cursor(page[-1]) if more else None,
        }

    async def _entries(self, user_id: int, before: Entry | None, count: int) -> list[Entry]:
        try:
            built, full, cached = await self.timelines.page(user_id, before, count)
            if not built:
                await self.rebuild(user_id, replace=False, reason="missing")
                built, full, cached = await self.timelines.page(user_id, before, count)
        except REDIS_DOWN:
            log.warning("feed of %s read from postgres: redis unavailable", user_id)
            return await self._from_database(user_id, before, count, "redis_down")
        if len(cached) < count and full:
            return await self._from_database(user_id, before, count, "beyond_cap")
        PAGES.labels("redis").inc()
        bound = None if before is None else (time_of(before.score), before.post_id)
        rows = await repository.celebrity_page(self.session, user_id, self.settings.celebrity_threshold, bound, count)
        return newest_first([*cached, *(Entry.from_row(row) for row in rows)])[:count]

    async def _from_database(self, user_id: int, before: Entry | None, count: int, source: str) -> list[Entry]:
        PAGES.labels(source).inc()
        bound = None if before is None else (time_of(before.score), before.post_id)
        return [Entry.from_row(row) for row in await repository.full_page(self.session, user_id, bound, count)]

    async def rebuild(self, user_id: int, *, replace: bool, reason: str = "requested") -> int:
        rows = await repository.timeline_source(
            self.session, user_id, self.settings.celebrity_threshold, self.settings.timeline_cap
        )
        await self.timelines.fill(user_id, [Entry.from_row(row) for row in rows], replace=replace)
        REBUILDS.labels(reason).inc()
        return len(rows)

    # -------------------------------------------------------------------- events (consumers)
    # The projections change in the consumer's transaction; Redis is written after it committed.

    async def post_created(self, post_id: int, author_id: int, created_at: datetime) -> None:
        """Added with the transaction's other new posts in one statement (`defer`)."""
        defer(self.session, _NEW_POSTS, (post_id, author_id, _ms(created_at)), self._add_posts)

    async def _add_posts(self, new_posts: list[tuple[int, int, datetime]]) -> None:
        for added in await repository.add_posts(self.session, new_posts, self.settings.celebrity_threshold):
            if added.celebrity:
                FANOUT_SKIPPED.inc()
            self._add_after_commit("post_created", _timelines(added), [Entry.from_row(added)])

    async def post_deleted(self, post_id: int) -> None:
        await run_deferred(self.session, _NEW_POSTS)  # the new posts first: the events' order
        deleted = await repository.remove_post(self.session, post_id, self.settings.celebrity_threshold)
        if deleted is None:
            return
        self._remove_after_commit("post_deleted", _timelines(deleted), [post_id])

    async def follow_created(self, follower_id: int, followee_id: int, at: datetime) -> None:
        await run_deferred(self.session, _NEW_POSTS)
        threshold = self.settings.celebrity_threshold
        rows = await repository.add_follow(
            self.session, follower_id, followee_id, at, threshold, self.settings.backfill_count
        )
        if not rows:
            return  # known already
        if rows[0].followers > threshold:
            return  # merged at read time from now on
        self._add_after_commit(
            "follow_created", [follower_id], [Entry.from_row(row) for row in rows if row.id is not None]
        )

    async def follow_deleted(self, follower_id: int, followee_id: int) -> None:
        await run_deferred(self.session, _NEW_POSTS)
        post_ids = await repository.remove_follow(self.session, follower_id, followee_id)
        if post_ids is None:
            return
        self._remove_after_commit("follow_deleted", [follower_id], post_ids)

    def _add_after_commit(self, event: str, timelines: Sequence[int], entries: Sequence[Entry]) -> None:
        """Adds of one transaction (a consumer's batch: ~20 posts under load) go to Redis in one
        pipeline once it committed: one round trip instead of one each."""
        defer(self.session, _ADDS, (event, timelines, entries), self._write_adds, when=after_commit)

    async def _write_adds(self, adds: list[tuple[str, Sequence[int], Sequence[Entry]]]) -> None:
        events = [(event, timelines) for event, timelines, _ in adds]
        await self._fan_out(events, self.timelines.add((timelines, entries) for _, timelines, entries in adds))

    def _remove_after_commit(self, event: str, timelines: Sequence[int], post_ids: Sequence[int]) -> None:
        seal(self.session, _ADDS)  # the adds queued after this removal are written after it
        after_commit(
            self.session, lambda: self._fan_out([(event, timelines)], self.timelines.remove(timelines, post_ids))
        )

    async def _fan_out(self, events: Sequence[tuple[str, Sequence[int]]], write: Awaitable[None]) -> None:
        """Await `write`, the Redis side of `events` (event, timelines), for the metrics."""
        started = time.perf_counter()
        try:
            await write
        except REDIS_DOWN:
            # The projections hold the change: a rebuild (POST /users/{id}/feed/rebuild, or any
            # read after Redis lost its data) brings the timelines back in line.
            for event, _ in events:
                FANOUT_ERRORS.labels(event).inc()
            lost = ", ".join(sorted({event for event, _ in events}))
            count = sum(len(timelines) for _, timelines in events)
            log.warning("fan-out of %s to %d timelines lost: redis unavailable", lost, count)
            return
        elapsed = time.perf_counter() - started
        for event, timelines in events:
            FANOUT_SECONDS.labels(event).observe(elapsed)
            FANOUT_WRITES.labels(event).inc(len(timelines))
