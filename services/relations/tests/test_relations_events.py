"""The relations worker against the real Kafka: the outbox relay publishes relation events, the
user-events consumer keeps the projection and cascades deleted users."""

import asyncio

import httpx
import orjson
import pytest
from aiokafka import ConsumerRecord
from relations_support import Seed, new_id, user_event
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_contracts.events import Event
from pinstack_kit.outbox import OutboxRelay, create_producer
from pinstack_relations.config import Settings
from pinstack_relations.worker import consumers
from pinstack_testing import KAFKA, Start, eventually, kafka_producer, kafka_reader, start_consumers

pytestmark = pytest.mark.integration


async def publish(settings: Settings, *events: Event) -> None:
    async with kafka_producer() as producer:
        for event in events:
            await producer.send_and_wait(
                settings.topic("user-events"),
                value=event.model_dump_json().encode(),
                key=event.aggregate_id.encode(),
                headers=[(k, v.encode()) for k, v in event.headers().items()],
            )


async def names(client: httpx.AsyncClient, user_id: int, kind: str) -> list[dict]:  # type: ignore[type-arg]
    response = await client.get(f"/users/{user_id}/{kind}")
    return response.json()["data"][kind] if response.status_code == 200 else []  # type: ignore[no-any-return]


async def relation_outbox(engine: AsyncEngine, settings: Settings, event_type: str) -> list[dict]:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT value FROM outbox WHERE topic = :t AND headers->>'event_type' = :e ORDER BY id"),
            {"t": settings.topic("relation-events"), "e": event_type},
        )
        return [orjson.loads(bytes(r.value)) for r in rows]


class TestOutboxRelay:
    async def test_follows_reach_kafka_keyed_by_follower_with_upstream_headers(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings, start: Start
    ) -> None:
        follower, a, b = await seed(3)
        for followee in (a, b):
            assert (await client.post("/follows", json={"follower_id": follower, "followee_id": followee})).is_success
        await client.delete("/follows", params={"follower_id": follower, "followee_id": a})
        start(OutboxRelay(engine, lambda: create_producer(KAFKA, "test-relations-relay")))

        records: list[ConsumerRecord] = []
        async with kafka_reader(settings.topic("relation-events")) as reader:
            while len(records) < 3:
                batch = await asyncio.wait_for(reader.getmany(timeout_ms=500), 20)
                records += [r for items in batch.values() for r in items]
        # one key, hence one partition, hence the user's own order
        assert {r.key for r in records} == {str(follower).encode()}
        assert len({r.partition for r in records}) == 1
        kinds = [dict(r.headers)["event_type"] for r in sorted(records, key=lambda r: r.offset)]
        assert kinds == [b"follow_created", b"follow_created", b"follow_deleted"]
        assert [orjson.loads(r.value)["followee_id"] for r in sorted(records, key=lambda r: r.offset)] == [a, b, a]


class TestUserEvents:
    async def test_created_and_updated_users_feed_the_projection(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings, start: Start
    ) -> None:
        [fan] = await seed()
        star = new_id()  # known to nobody but the events
        user = {
            "id": star,
            "username": "firstname",
            "email": "s@example.com",
            "created_at": "2025-01-01T00:00:00Z",
            "updated_at": "2025-01-01T00:00:00Z",
        }
        await publish(settings, user_event("user_created", user))
        start_consumers(start, consumers(settings), engine)
        await eventually(lambda: _known(engine, star), timeout=20)
        assert (await client.post("/follows", json={"follower_id": fan, "followee_id": star})).status_code == 200

        renamed = {**user, "username": "secondname", "avatar_url": "https://cdn.example.com/s.png"}
        await publish(settings, user_event("user_updated", renamed))

        async def shows_new_name() -> bool:
            return await names(client, fan, "followees") == [
                {"id": star, "username": "secondname", "avatar_url": "https://cdn.example.com/s.png"}
            ]

        await eventually(shows_new_name, timeout=20)

    async def test_a_deleted_user_takes_every_follow_along_with_follow_deleted_events(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings, start: Start
    ) -> None:
        gone, b, c = await seed(3)
        for follower, followee in ((gone, b), (c, gone), (b, c)):
            assert (await client.post("/follows", json={"follower_id": follower, "followee_id": followee})).is_success
        deleted = user_event("user_deleted", {"id": gone})
        await publish(settings, deleted, deleted)  # redelivered: applied once
        start_consumers(start, consumers(settings), engine)

        async def cascaded() -> bool:
            return (await client.get(f"/users/{gone}/followers")).status_code == 404

        await eventually(cascaded, timeout=20)
        assert await names(client, b, "followers") == []
        assert await names(client, c, "followees") == []
        assert [u["id"] for u in await names(client, b, "followees")] == [c]  # untouched
        removed = await relation_outbox(engine, settings, "follow_deleted")
        assert sorted((e["follower_id"], e["followee_id"]) for e in removed) == sorted([(gone, b), (c, gone)])
        # the deleted user stays gone: no new follows either way
        refused = await client.post("/follows", json={"follower_id": b, "followee_id": gone})
        assert refused.json() == {"status": 404, "message": "user not found"}
        refused = await client.post("/follows", json={"follower_id": gone, "followee_id": b})
        assert refused.json() == {"status": 404, "message": "user not found"}

    async def test_an_update_never_revives_a_deleted_user(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings, start: Start
    ) -> None:
        gone, fan = await seed(2)
        stale = user_event(
            "user_updated",
            {
                "id": gone,
                "username": "ghost",
                "email": "g@example.com",
                "created_at": "2025-01-01T00:00:00Z",
                "updated_at": "2025-01-01T00:00:00Z",
            },
        )
        await publish(settings, user_event("user_deleted", {"id": gone}), stale)
        start_consumers(start, consumers(settings), engine)

        async def consumed_both() -> bool:
            async with engine.connect() as conn:
                done = await conn.scalar(
                    text("SELECT count(*) FROM processed_events WHERE event_key LIKE :t"),
                    {"t": settings.topic("user-events") + ":%"},
                )
            return done == 2

        await eventually(consumed_both, timeout=20)
        refused = await client.post("/follows", json={"follower_id": fan, "followee_id": gone})
        assert refused.json() == {"status": 404, "message": "user not found"}


async def _known(engine: AsyncEngine, user_id: int) -> bool:
    async with engine.connect() as conn:
        return bool(await conn.scalar(text("SELECT count(*) FROM users WHERE id = :id"), {"id": user_id}))
