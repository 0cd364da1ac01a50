"""The consumer runner against the real PostgreSQL and Kafka: exactly-once effects and DLT."""

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pinstack_kit.consumer import ConsumerRunner
from pinstack_kit.db import sessionmaker
from pinstack_kit.outbox import create_producer
from pinstack_kit.testing import KAFKA, eventually

pytestmark = pytest.mark.integration


async def handler(session: AsyncSession, record: ConsumerRecord) -> None:
    if record.value == b"poison":
        raise ValueError("cannot handle this record")
    await session.execute(
        text("INSERT INTO consumed (topic, value) VALUES (:t, :v)"), {"t": record.topic, "v": record.value.decode()}
    )


async def produce(topic: str, items: list[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        for event_id, value in items:
            await producer.send_and_wait(topic, value=value, key=b"k", headers=[("event_id", event_id.encode())])
    finally:
        await producer.stop()


async def count(engine: AsyncEngine, topic: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM consumed WHERE topic = :t"), {"t": topic}) or 0)


class TestConsumerRunner:
    async def test_redelivered_events_apply_once_and_poison_goes_to_dead_letter(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS consumed (topic text, value text)"))
        topic, dlt = kafka_topic("consumer-in"), kafka_topic("consumer-dlt")
        # e2 is delivered twice (a producer retry or a relay crash before marking it sent).
        await produce(topic, [("e1", b"one"), ("e2", b"two"), ("e2", b"two"), ("e3", b"poison"), ("e4", b"four")])

        def runner() -> ConsumerRunner:
            return ConsumerRunner(
                bootstrap_servers=KAFKA,
                group_id=f"{topic}-group",
                topics=[topic],
                handler=handler,
                sessionmaker=sessionmaker(engine),
                producer_factory=lambda: create_producer(KAFKA, "test-dlt"),
                dead_letter_topic=dlt,
                max_attempts=2,
            )

        first = runner()
        task = asyncio.create_task(first.run())
        await eventually(lambda: count(engine, topic), timeout=20.0)
        await eventually(lambda: _equals(count(engine, topic), 3), timeout=20.0)
        first.stop()
        await asyncio.wait_for(task, 10)

        # A restarted consumer resumes after the committed offsets: nothing is applied again.
        second = runner()
        task = asyncio.create_task(second.run())
        await asyncio.sleep(2.0)
        second.stop()
        await asyncio.wait_for(task, 10)
        assert await count(engine, topic) == 3

        dead = AIOKafkaConsumer(dlt, bootstrap_servers=KAFKA, auto_offset_reset="earliest", metadata_max_age_ms=500)
        await dead.start()
        try:
            record = await asyncio.wait_for(dead.getone(), 10)
        finally:
            await dead.stop()
        assert record.value == b"poison"
        assert dict(record.headers)["source_topic"] == topic.encode()


async def _equals(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return (await value) == expected


class TestDependencyOutage:
    async def test_a_redis_outage_is_waited_out_not_dead_lettered(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS consumed (topic text, value text)"))
        topic = kafka_topic("consumer-redis-down")
        await produce(topic, [("r1", b"one")])
        failures = {"left": 4}  # more than max_attempts: a poison record would be parked by now

        async def redis_down_for_a_while(session: AsyncSession, record: ConsumerRecord) -> None:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise RedisConnectionError("Error 111 connecting to 127.0.0.1. Connection refused.")
            await handler(session, record)

        parked: list[bytes] = []
        runner = ConsumerRunner(
            bootstrap_servers=KAFKA,
            group_id=f"{topic}-group",
            topics=[topic],
            handler=redis_down_for_a_while,
            sessionmaker=sessionmaker(engine),
            producer_factory=lambda: create_producer(KAFKA, "test-dlt"),
            dead_letter_topic=kafka_topic("consumer-redis-dlt"),
            max_attempts=2,
        )

        async def park(record: ConsumerRecord) -> None:
            parked.append(record.value)

        runner._dead_letter = park  # type: ignore[method-assign]
        task = asyncio.create_task(runner.run())
        await eventually(lambda: _equals(count(engine, topic), 1), timeout=30.0)
        runner.stop()
        await asyncio.wait_for(task, 10)
        assert failures["left"] == 0
        assert parked == []
