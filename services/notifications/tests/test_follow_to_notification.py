"""End to end on the real servers: a follow on a running relations server goes through its outbox,
the relay, Kafka and the notifications consumer, and becomes exactly one notification."""

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from notifications_support import new_id, produce
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.consumer import ConsumerRunner
from pinstack_kit.db import create_engine, sessionmaker
from pinstack_kit.outbox import OutboxRelay, create_producer
from pinstack_notifications.config import Settings
from pinstack_notifications.worker import consumers
from pinstack_testing import KAFKA, Start, eventually, kafka_reader, spawn_service

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefix(kafka_topic) -> str:  # type: ignore[no-untyped-def]
    return kafka_topic(f"e2e-{uuid.uuid4().hex[:8]}") + "."


@pytest.fixture(scope="module")
def relations_db(pg_database) -> str:  # type: ignore[no-untyped-def]
    return pg_database("relations", SERVICES / "relations" / "migrations")


@pytest.fixture(scope="module")
def relations_url(relations_db: str, users_url: str, prefix: str) -> Iterator[str]:
    """The relations API as a real server; its relay runs in the test (see `relay`)."""
    env = {"ENVIRONMENT": "test", "DATABASE_URL": relations_db, "USERS_URL": users_url, "KAFKA_TOPIC_PREFIX": prefix}
    with spawn_service("pinstack_relations.main:create_app", env) as url:
        yield url


@pytest.fixture
async def relations(relations_url: str, relations_db: str, prefix: str) -> AsyncIterator["Relations"]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:  # created up front so the consumer is assigned them at once, not at its next metadata refresh
        await admin.create_topics(
            [NewTopic(f"{prefix}{t}", 3, 1) for t in ("relation-events", "activity-events", "user-events")]
        )
    except Exception:  # noqa: S110 - TopicAlreadyExistsError for the second test of the module
        pass
    finally:
        await admin.close()
    engine = create_engine(BaseServiceSettings(database_url=relations_db, service_name="relations-e2e"))
    async with httpx.AsyncClient(base_url=relations_url) as http:
        yield Relations(http, engine)
    await engine.dispose()


class Relations:
    def __init__(self, http: httpx.AsyncClient, engine: AsyncEngine) -> None:
        self.http = http
        self.engine = engine

    def relay(self) -> OutboxRelay:
        return OutboxRelay(self.engine, lambda: create_producer(KAFKA, "relations-e2e-relay"))

    async def users(self, count: int) -> list[int]:
        """Users the relations service knows (its projection, as the user events would fill it)."""
        ids = [new_id() for _ in range(count)]
        async with self.engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users (id, username) VALUES (:id, :name)"),
                [{"id": i, "name": f"user{i}"} for i in ids],
            )
        return ids

    async def follow(self, follower: int, followee: int) -> dict:  # type: ignore[type-arg]
        response = await self.http.post("/follows", json={"follower_id": follower, "followee_id": followee})
        assert response.status_code == 200, response.text
        return response.json()["data"]  # type: ignore[no-any-return]


@pytest.fixture
def e2e_settings(settings: Settings, prefix: str) -> Settings:
    return settings.model_copy(update={"kafka_topic_prefix": prefix})


def consumer(settings: Settings, engine: AsyncEngine) -> ConsumerRunner:
    [runner] = consumers(settings)(engine, sessionmaker(engine))
    assert isinstance(runner, ConsumerRunner)
    return runner


async def notifications_of(engine: AsyncEngine, user_id: int) -> list:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT type, payload FROM notifications WHERE user_id = :u ORDER BY id"), {"u": user_id}
        )
        return list(result.all())


async def count_of(engine: AsyncEngine, user_id: int) -> int:
    async with engine.connect() as conn:
        total = await conn.scalar(text("SELECT count(*) FROM notifications WHERE user_id = :u"), {"u": user_id})
        return int(total or 0)


async def lag(group: str, topic: str) -> int:
    """Records of `topic` the group has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    reader = AIOKafkaConsumer(bootstrap_servers=KAFKA)
    await admin.start()
    await reader.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        await reader.topics()
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        ends = await reader.end_offsets(partitions)
    finally:
        await reader.stop()
        await admin.close()
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())


class TestFollowToNotification:
    async def test_a_follow_notifies_the_followee_once_within_a_second(
        self, relations: Relations, e2e_settings: Settings, engine: AsyncEngine, start: Start, record_property
    ) -> None:  # type: ignore[no-untyped-def]
        start(relations.relay())
        start(consumer(e2e_settings, engine))
        fan, star = await relations.users(2)
        await relations.follow(fan, star)  # warm-up: group joined, partitions assigned
        await eventually(lambda: count_of(engine, star), timeout=30)

        latencies = []
        for _ in range(10):
            follower, followee = await relations.users(2)
            began = time.perf_counter()
            follow = await relations.follow(follower, followee)
            await eventually(lambda: count_of(engine, followee), timeout=10, interval=0.005)  # noqa: B023
            latencies.append(time.perf_counter() - began)
            [notification] = await notifications_of(engine, followee)
            assert notification.type == "follow_created"
            assert notification.payload == {
                "followee_id": followee,
                "follower_id": follower,
                "timestamptz": follow["created_at"],
            }
        record_property("follow_to_notification_seconds", latencies)
        print(
            f"follow -> notification: median {statistics.median(latencies) * 1000:.0f} ms, "
            f"max {max(latencies) * 1000:.0f} ms"
        )
        assert max(latencies) < 1.0

    async def test_a_record_delivered_twice_makes_one_notification(
        self, relations: Relations, e2e_settings: Settings, engine: AsyncEngine, start: Start, prefix: str
    ) -> None:
        start(relations.relay())
        start(consumer(e2e_settings, engine))
        follower, followee, later = await relations.users(3)
        await relations.follow(follower, followee)
        await eventually(lambda: count_of(engine, followee), timeout=30)

        topic = f"{prefix}relation-events"
        async with kafka_reader(topic) as reader:
            while True:
                record = await asyncio.wait_for(reader.getone(), 20)
                if record.key == str(follower).encode():
                    break
        # The very record the relay published, published again twice (same event_id).
        again = (record.key, record.value, {k: v.decode() for k, v in record.headers})
        await produce(topic, [again, again])
        # Same follower, same key, same partition: once this one is in, the copies were handled.
        await relations.follow(follower, later)
        await eventually(lambda: count_of(engine, later), timeout=30)
        assert await count_of(engine, followee) == 1

    async def test_a_consumer_stopped_and_restarted_mid_stream_loses_and_duplicates_nothing(
        self, relations: Relations, e2e_settings: Settings, engine: AsyncEngine, start: Start, prefix: str
    ) -> None:
        start(relations.relay())
        star, *fans = await relations.users(51)

        crashed = consumer(e2e_settings, engine)
        crash = asyncio.create_task(crashed.run())
        stopped = consumer(e2e_settings, engine)
        graceful: asyncio.Task[None] | None = None
        for i, fan in enumerate(fans):
            if i == 10:
                await eventually(lambda: count_of(engine, star), timeout=30)
                crash.cancel()  # killed mid-stream: handled but uncommitted records come again
                await asyncio.gather(crash, return_exceptions=True)
            if i == 20:
                graceful = asyncio.create_task(stopped.run())
            if i == 35:
                stopped.stop()  # stopped mid-stream: commits what it handled
                await asyncio.wait_for(graceful, 20)  # type: ignore[arg-type]
            await relations.follow(fan, star)
        start(consumer(e2e_settings, engine))

        async def all_in() -> bool:
            return await count_of(engine, star) >= 50

        await eventually(all_in, timeout=30)
        group, topic = f"{prefix}notifications", f"{prefix}relation-events"

        async def caught_up() -> bool:
            return await lag(group, topic) == 0

        await eventually(caught_up, timeout=30, interval=0.2)
        notifications = await notifications_of(engine, star)
        assert len(notifications) == 50
        assert sorted(n.payload["follower_id"] for n in notifications) == sorted(fans)
