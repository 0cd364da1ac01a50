"""The feed service on the real PostgreSQL, Redis and Kafka: fan-out, celebrities, rebuilds, cursors."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from feed_support import Deliver, DeliverBatch, at, follow_event, new_id, post_event
from prometheus_client import REGISTRY
from redis.asyncio import Redis
from sqlalchemy import text

from pinstack_e2e.processes import free_port
from pinstack_feed.config import Settings
from pinstack_feed.main import create_app
from pinstack_feed.timeline.consumers import feed_event_handler
from pinstack_feed.timeline.service import Entry, decode_cursor, encode_cursor
from pinstack_feed.worker import consumers
from pinstack_kit.envelope import rfc3339
from pinstack_testing import app_client, eventually, handle_batch, handle_record, kafka_producer, sql_statements, worker

pytestmark = pytest.mark.integration


async def feed(client: httpx.AsyncClient, user_id: int, **params: Any) -> dict[str, Any]:
    response = await client.get(f"/users/{user_id}/feed", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def ids(client: httpx.AsyncClient, user_id: int, **params: Any) -> list[int]:
    return [item["post_id"] for item in (await feed(client, user_id, limit=100, **params))["items"]]


async def all_pages(client: httpx.AsyncClient, user_id: int, limit: int) -> list[int]:
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = await feed(client, user_id, limit=limit, **({"cursor": cursor} if cursor else {}))
        seen += [item["post_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen


async def publish(deliver: Deliver, author_id: int, seconds: int) -> int:
    post_id = new_id()
    await deliver(post_event("post_created", post_id, author_id, at(seconds)))
    return post_id


async def followers(app: FastAPI, author_id: int, count: int) -> list[int]:
    """`count` followers of `author_id` written straight into the projection (fast set-up)."""
    users = [new_id() for _ in range(count)]
    async with app.state.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO follows (follower_id, followee_id) SELECT u, :a FROM unnest(CAST(:us AS bigint[])) u"),
            {"a": author_id, "us": users},
        )
        await conn.execute(text("INSERT INTO follower_counts VALUES (:a, :n)"), {"a": author_id, "n": count})
    return users


async def follows_a_star_and_a_friend(app: FastAPI, deliver: Deliver, settings: Settings, *, posts_each: int) -> int:
    """A reader following a celebrity (merged at read time) and a friend (fanned out), each with
    `posts_each` posts, one a second; returns the reader."""
    reader, star, friend = new_id(), new_id(), new_id()
    await followers(app, star, settings.celebrity_threshold + 1)
    for author in (star, friend):
        await deliver(follow_event("follow_created", reader, author))
        for seconds in range(posts_each):
            await publish(deliver, author, seconds)
    return reader


class TestFanOut:
    async def test_followers_see_posts_newest_first(self, client: httpx.AsyncClient, deliver: Deliver) -> None:
        reader, author, stranger = new_id(), new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        posts = [await publish(deliver, author, seconds) for seconds in (10, 30, 20)]
        page = await feed(client, reader)
        assert [item["post_id"] for item in page["items"]] == [posts[1], posts[2], posts[0]]
        assert page["items"][0]["created_at"] == rfc3339(at(30)) and page["next_cursor"] is None
        assert await ids(client, stranger) == []

    async def test_posts_of_several_followees_interleave(self, client: httpx.AsyncClient, deliver: Deliver) -> None:
        reader, first, second = new_id(), new_id(), new_id()
        await deliver(follow_event("follow_created", reader, first))
        await deliver(follow_event("follow_created", reader, second))
        a1, b1, a2 = (
            await publish(deliver, first, 1),
            await publish(deliver, second, 2),
            await publish(deliver, first, 3),
        )
        assert await ids(client, reader) == [a2, b1, a1]

    async def test_a_follow_backfills_and_an_unfollow_removes(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver
    ) -> None:
        reader, author, other = new_id(), new_id(), new_id()
        await deliver(follow_event("follow_created", reader, other))
        kept = await publish(deliver, other, 5)
        earlier = [await publish(deliver, author, seconds) for seconds in range(1, 4)]
        await feed(client, reader)  # the timeline exists before the follow
        with sql_statements(app.state.engine) as follow_sql:
            await deliver(follow_event("follow_created", reader, author))
        assert await ids(client, reader) == [kept, *reversed(earlier)]
        with sql_statements(app.state.engine) as unfollow_sql:
            await deliver(follow_event("follow_deleted", reader, author))
        assert await ids(client, reader) == [kept]
        # each with what the timeline needs of it: one statement
        assert [s.split(None, 1)[0] for s in follow_sql + unfollow_sql] == ["WITH", "WITH"], follow_sql + unfollow_sql
        await publish(deliver, author, 9)
        assert await ids(client, reader) == [kept]

    async def test_authors_see_their_own_posts(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, redis: Redis, settings: Settings
    ) -> None:
        author, followee, star = new_id(), new_id(), new_id()
        await followers(app, star, settings.celebrity_threshold + 1)
        await deliver(follow_event("follow_created", author, followee))
        mine, theirs = await publish(deliver, author, 1), await publish(deliver, followee, 2)
        starred = await publish(deliver, star, 3)  # a celebrity's own post is fanned out to them alone
        assert await ids(client, author) == [theirs, mine]
        assert await ids(client, star) == [starred]
        await deliver(post_event("post_deleted", starred, star))
        assert await ids(client, star) == []
        await redis.delete(f"{settings.key_prefix}timeline:{author}", f"{settings.key_prefix}built:{author}")
        assert await ids(client, author) == [theirs, mine]  # rebuilt with them
        await deliver(post_event("post_deleted", mine, author))
        assert await ids(client, author) == [theirs]

    async def test_the_backfill_is_bounded(
        self, client: httpx.AsyncClient, deliver: Deliver, settings: Settings
    ) -> None:
        reader, author = new_id(), new_id()
        posts = [await publish(deliver, author, seconds) for seconds in range(settings.backfill_count + 5)]
        await feed(client, reader)  # built (empty) before the follow: only the back-fill is added
        await deliver(follow_event("follow_created", reader, author))
        assert await ids(client, reader) == list(reversed(posts))[: settings.backfill_count]

    async def test_a_deleted_post_disappears(self, client: httpx.AsyncClient, deliver: Deliver) -> None:
        reader, author = new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        gone, kept = await publish(deliver, author, 1), await publish(deliver, author, 2)
        assert await ids(client, reader) == [kept, gone]
        await deliver(post_event("post_deleted", gone, author))
        assert await ids(client, reader) == [kept]
        await client.post(f"/users/{reader}/feed/rebuild")
        assert await ids(client, reader) == [kept]

    async def test_redelivered_and_unknown_events_change_nothing(
        self, client: httpx.AsyncClient, deliver: Deliver, redis: Redis, settings: Settings
    ) -> None:
        reader, author = new_id(), new_id()
        follow = follow_event("follow_created", reader, author)
        await deliver(follow)
        await deliver(follow)
        created = post_event("post_created", new_id(), author, at(1))
        await deliver(created)
        await deliver(created)
        await deliver(post_event("post_updated", new_id(), author, at(2)))
        await deliver(post_event("post_deleted", new_id(), author))
        await deliver(follow_event("follow_deleted", reader, new_id()))
        assert len(await ids(client, reader)) == 1
        assert await redis.zcard(f"{settings.key_prefix}timeline:{reader}") == 1

    async def test_a_batch_fans_out_in_one_pipeline(
        self,
        app: FastAPI,
        client: httpx.AsyncClient,
        deliver_batch: DeliverBatch,
        redis: Redis,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The records a consumer takes together: one statement adds all their posts, one Redis
        round trip writes them to the timelines, one ZADD per timeline however many it gets."""
        readers, authors = [new_id() for _ in range(3)], [new_id() for _ in range(4)]
        await deliver_batch([follow_event("follow_created", r, a) for r in readers for a in authors])
        for reader in readers:
            await feed(client, reader)  # built (empty) before the posts
        pipelines: list[object] = []
        opened = redis.pipeline

        def counted(*args: Any, **kwargs: Any) -> Any:
            pipelines.append(pipe := opened(*args, **kwargs))
            return pipe

        monkeypatch.setattr(redis, "pipeline", counted)
        zadds = int((await redis.info("commandstats")).get("cmdstat_zadd", {}).get("calls", 0))
        posts = {(author, new_id()): seconds for seconds, author in enumerate(authors * 5)}
        records = [post_event("post_created", p, a, at(s)) for (a, p), s in posts.items()]
        with sql_statements(app.state.engine) as seen:
            await deliver_batch(records)
        assert len(pipelines) == 1
        assert len([sql for sql in seen if "processed_events" not in sql]) == 1, seen  # the 20 posts at once
        calls = int((await redis.info("commandstats"))["cmdstat_zadd"]["calls"]) - zadds
        assert calls <= len(readers) + len(authors) + 8, calls  # 7 timelines; other tests may write too
        newest_first = [p for (_, p), _ in sorted(posts.items(), key=lambda kv: -kv[1])]
        monkeypatch.undo()
        for reader in readers:
            assert await ids(client, reader) == newest_first
        for author in authors:
            assert await ids(client, author) == [
                p for (a, p) in sorted(posts, key=posts.get, reverse=True) if a == author
            ]

    async def test_a_removal_in_a_batch_keeps_its_place(
        self, client: httpx.AsyncClient, deliver: Deliver, deliver_batch: DeliverBatch
    ) -> None:
        """Adds queued after a removal are not merged into the adds before it: a post, an unfollow
        and a follow again leave the post in the timeline; a post then an unfollow does not."""
        back, gone, author = new_id(), new_id(), new_id()
        for reader in (back, gone):
            await deliver(follow_event("follow_created", reader, author))
            await feed(client, reader)
        post_id = new_id()
        await deliver_batch(
            [
                post_event("post_created", post_id, author, at(1)),
                follow_event("follow_deleted", back, author),
                follow_event("follow_deleted", gone, author),
                follow_event("follow_created", back, author),
            ]
        )
        assert await ids(client, back) == [post_id]
        assert await ids(client, gone) == []
        assert await ids(client, author) == [post_id]

    async def test_a_post_created_and_deleted_in_one_batch_is_gone(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, deliver_batch: DeliverBatch
    ) -> None:
        """The statements the batch defers keep the events' order: the delete sees the post."""
        reader, author = new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        await feed(client, reader)
        gone, kept = new_id(), new_id()
        records = [
            post_event("post_created", gone, author, at(1)),
            post_event("post_deleted", gone, author),
            post_event("post_created", kept, author, at(2)),
        ]
        await deliver_batch(records)
        assert await ids(client, reader) == [kept]
        async with app.state.engine.connect() as conn:
            known = await conn.scalars(text("SELECT id FROM posts WHERE id = ANY(:ids)"), {"ids": [gone, kept]})
            assert list(known) == [kept]

    async def test_a_batch_lost_to_a_redis_outage_is_counted_and_rebuilt(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, settings: Settings
    ) -> None:
        """Redis down after the commit: the projections hold the batch, each event of it is counted
        as a lost fan-out, and a rebuild brings the timeline back in line."""
        reader, author = new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        await feed(client, reader)  # built: a read trusts it

        def lost() -> float:
            return REGISTRY.get_sample_value("feed_fanout_errors_total", {"event": "post_created"}) or 0.0

        before = lost()
        down = Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=1)  # nothing listens
        posts = [new_id() for _ in range(3)]
        records = [post_event("post_created", p, author, at(s)) for s, p in enumerate(posts)]
        await handle_batch(app.state.sessionmaker, records, feed_event_handler(settings, down))
        await down.aclose()
        assert lost() - before == 3
        assert await ids(client, reader) == []  # what Redis holds: the fan-out never reached it
        assert (await client.post(f"/users/{reader}/feed/rebuild")).status_code == 200
        assert await ids(client, reader) == list(reversed(posts))

    async def test_timelines_are_capped(
        self, client: httpx.AsyncClient, deliver: Deliver, redis: Redis, settings: Settings
    ) -> None:
        reader, author = new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        posts = [await publish(deliver, author, seconds) for seconds in range(settings.timeline_cap + 10)]
        assert await redis.zcard(f"{settings.key_prefix}timeline:{reader}") == settings.timeline_cap
        # Pages beyond the cap come from Postgres: the whole history is still reachable.
        assert await all_pages(client, reader, limit=7) == list(reversed(posts))


class TestCelebrities:
    async def test_posts_are_not_fanned_out_but_merged_at_read(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, redis: Redis, settings: Settings
    ) -> None:
        reader, star, friend = new_id(), new_id(), new_id()
        await followers(app, star, settings.celebrity_threshold)
        await deliver(follow_event("follow_created", reader, star))  # one more: above the threshold
        await deliver(follow_event("follow_created", reader, friend))
        f1 = await publish(deliver, friend, 1)
        s1 = await publish(deliver, star, 2)
        f2 = await publish(deliver, friend, 3)
        s2 = await publish(deliver, star, 4)
        timeline = await redis.zrange(f"{settings.key_prefix}timeline:{reader}", 0, -1)
        assert sorted(int(m) for m in timeline) == sorted([f1, f2])  # the star's posts: read time only
        assert await ids(client, reader) == [s2, f2, s1, f1]
        assert await all_pages(client, reader, limit=1) == [s2, f2, s1, f1]
        await deliver(post_event("post_deleted", s2, star))
        assert await ids(client, reader) == [f2, s1, f1]
        await deliver(follow_event("follow_deleted", reader, star))
        assert await ids(client, reader) == [f2, f1]

    async def test_a_page_costs_one_statement(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, settings: Settings
    ) -> None:
        reader = await follows_a_star_and_a_friend(app, deliver, settings, posts_each=30)
        await feed(client, reader)  # built
        for limit in (1, 20, 100):
            with sql_statements(app.state.engine) as seen:
                assert len((await feed(client, reader, limit=limit))["items"]) == min(limit, 60)
            assert len([s for s in seen if s.lstrip().upper().startswith("SELECT")]) == 1, seen


class TestRebuild:
    async def test_a_lost_timeline_is_rebuilt_with_the_same_content(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, redis: Redis, settings: Settings
    ) -> None:
        reader, star, first, second = new_id(), new_id(), new_id(), new_id()
        await followers(app, star, settings.celebrity_threshold + 1)
        for author in (first, second, star):
            await deliver(follow_event("follow_created", reader, author))
        for seconds in range(12):
            await publish(deliver, (first, second, star)[seconds % 3], seconds)
        before = await all_pages(client, reader, limit=5)
        assert len(before) == 12
        await redis.delete(f"{settings.key_prefix}timeline:{reader}", f"{settings.key_prefix}built:{reader}")
        assert await all_pages(client, reader, limit=5) == before
        await redis.delete(f"{settings.key_prefix}timeline:{reader}")  # marker kept: explicit rebuild
        rebuilt = await client.post(f"/users/{reader}/feed/rebuild")
        assert rebuilt.json() == {"status": 200, "data": {"entries": 8}}  # the star's 4 are merged at read
        assert await all_pages(client, reader, limit=5) == before

    async def test_redis_down_serves_from_postgres(self, service_settings: Callable[..., Settings]) -> None:
        settings = service_settings(Settings, redis_url="redis://127.0.0.1:9/0")
        reader, author = new_id(), new_id()
        app = create_app(settings)
        async with app_client(app) as client:
            handler = feed_event_handler(settings, app.state.redis)
            records = [
                follow_event("follow_created", reader, author),
                post_event("post_created", new_id(), author, at(1)),
            ]
            for record in records:  # the fan-out is lost, not the event
                await handle_record(app.state.sessionmaker, record, handler)
            assert len(await ids(client, reader)) == 1


class TestCursor:
    async def test_pages_are_stable_while_posts_arrive(self, client: httpx.AsyncClient, deliver: Deliver) -> None:
        reader, author = new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        # Three posts per second: equal scores straddle page ends.
        posts = [await publish(deliver, author, n // 3) for n in range(25)]
        expected = sorted(posts, key=lambda p: (posts.index(p) // 3, p), reverse=True)
        seen: list[int] = []
        page = await feed(client, reader, limit=4)
        while True:
            seen += [item["post_id"] for item in page["items"]]
            await publish(deliver, author, 100 + len(seen))  # new posts land at the head
            if page["next_cursor"] is None:
                break
            page = await feed(client, reader, limit=4, cursor=page["next_cursor"])
        assert seen == expected

    async def test_link_header_and_limits(self, client: httpx.AsyncClient, deliver: Deliver) -> None:
        reader, author = new_id(), new_id()
        await deliver(follow_event("follow_created", reader, author))
        for seconds in range(25):
            await publish(deliver, author, seconds)
        response = await client.get(f"/users/{reader}/feed")
        page = response.json()["data"]
        assert len(page["items"]) == 20  # the default
        assert response.headers["link"] == f'</users/{reader}/feed?cursor={page["next_cursor"]}&limit=20>; rel="next"'
        last = await client.get(f"/users/{reader}/feed", params={"cursor": page["next_cursor"]})
        assert len(last.json()["data"]["items"]) == 5 and "link" not in last.headers
        for params in (
            {"limit": 0},
            {"limit": 101},
            {"cursor": "nonsense!"},
            {"cursor": encode_cursor(Entry(1, 1))[:-2]},
        ):
            bad = await client.get(f"/users/{reader}/feed", params=params)
            assert bad.json() == {"status": 400, "message": "validation failed"}, params


@pytest.mark.unit
class TestCursorCodec:
    def test_round_trip(self) -> None:
        entry = Entry(1_735_689_600_000, 2**62)
        assert decode_cursor(encode_cursor(entry)) == entry


class TestFanOutScale:
    async def test_a_post_reaches_a_thousand_followers(
        self, app: FastAPI, client: httpx.AsyncClient, settings: Settings, redis: Redis
    ) -> None:
        settings = settings.model_copy(update={"celebrity_threshold": 1000})
        author = new_id()
        users = await followers(app, author, 1000)
        handler = feed_event_handler(settings, redis)
        post_id = new_id()
        started = time.perf_counter()
        with sql_statements(app.state.engine) as seen:
            await handle_record(app.state.sessionmaker, post_event("post_created", post_id, author, at(1)), handler)
        elapsed = time.perf_counter() - started
        feed_sql = [statement for statement in seen if "processed_events" not in statement]
        assert len(feed_sql) == 1, feed_sql  # the post and its audience: one statement
        async with redis.pipeline(transaction=False) as pipe:
            for user in users:
                pipe.zscore(f"{settings.key_prefix}timeline:{user}", str(post_id))
            assert all(score is not None for score in await pipe.execute())
        print(f"\nfan-out of one post to 1000 followers: {elapsed * 1000:.1f} ms")

    async def test_page_latency(
        self, app: FastAPI, client: httpx.AsyncClient, deliver: Deliver, settings: Settings
    ) -> None:
        reader = await follows_a_star_and_a_friend(app, deliver, settings, posts_each=40)
        await feed(client, reader)
        timings = []
        for _ in range(200):
            started = time.perf_counter()
            assert len((await feed(client, reader, limit=20))["items"]) == 20
            timings.append(time.perf_counter() - started)
        timings.sort()
        print(
            f"\nfeed page (20 items, celebrity merge) p50 {timings[100] * 1000:.2f} ms, p99 {timings[198] * 1000:.2f} ms"
        )


class TestWorker:
    async def test_events_through_kafka_reach_the_feed(self, service_settings: Callable[..., Settings]) -> None:
        settings = service_settings(Settings)
        reader, author, post_id = new_id(), new_id(), new_id()
        async with kafka_producer() as producer:
            for record in (
                follow_event("follow_created", reader, author),
                post_event("post_created", post_id, author, datetime.now(UTC)),
            ):
                await producer.send_and_wait(
                    settings.topic(record.topic), record.value, key=record.key, headers=record.headers
                )
        async with worker(settings, consumers(settings)), app_client(create_app(settings)) as client:

            async def in_feed() -> bool:
                return await ids(client, reader) == [post_id]

            await eventually(in_feed, timeout=30.0)
