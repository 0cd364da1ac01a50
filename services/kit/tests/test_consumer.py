"""The consumer runner against the real PostgreSQL and Kafka: exactly-once effects and DLT."""

import asyncio
import logging
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pinstack_contracts.events import USER_DELETED, Event, UserDeleted
from pinstack_kit.consumer import ConsumerRunner, Handler, header, payload
from pinstack_kit.db import after_commit, defer, sessionmaker
from pinstack_kit.outbox import create_producer
from pinstack_testing import KAFKA, eventually

pytestmark = pytest.mark.integration


async def handler(session: AsyncSession, record: ConsumerRecord) -> None:
    if record.value == b"poison":
        raise ValueError("cannot handle this record")
    await session.execute(
        text("INSERT INTO consumed (topic, value) VALUES (:t, :v)"), {"t": record.topic, "v": record.value.decode()}
    )


async def produce(topic: str, items: list[tuple[str, bytes]]) -> None:
    await publish(topic, [({"event_id": event_id}, value) for event_id, value in items])


async def publish(topic: str, records: list[tuple[dict[str, str], bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        for headers, value in records:
            encoded = [(name, text.encode()) for name, text in headers.items()]
            await producer.send_and_wait(topic, value=value, key=b"k", headers=encoded)
    finally:
        await producer.stop()


async def create_consumed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE IF NOT EXISTS consumed (topic text, value text)"))


def runner_for(
    engine: AsyncEngine, topic: str, handler: Handler, dead_letter_topic: str, max_attempts: int = 3
) -> ConsumerRunner:
    return ConsumerRunner(
        bootstrap_servers=KAFKA,
        group_id=f"{topic}-group",
        topics=[topic],
        handler=handler,
        sessionmaker=sessionmaker(engine),
        producer_factory=lambda: create_producer(KAFKA, "test-dlt"),
        dead_letter_topic=dead_letter_topic,
        max_attempts=max_attempts,
    )


async def first_dead_letter(topic: str) -> ConsumerRecord:
    dead = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", metadata_max_age_ms=500)
    await dead.start()
    try:
        return await asyncio.wait_for(dead.getone(), 10)
    finally:
        await dead.stop()


async def count(engine: AsyncEngine, topic: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM consumed WHERE topic = :t"), {"t": topic}) or 0)


class TestConsumerRunner:
    async def test_redelivered_events_apply_once_and_poison_goes_to_dead_letter(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        await create_consumed(engine)
        topic, dlt = kafka_topic("consumer-in"), kafka_topic("consumer-dlt")
        # e2 is delivered twice (a producer retry or a relay crash before marking it sent).
        await produce(topic, [("e1", b"one"), ("e2", b"two"), ("e2", b"two"), ("e3", b"poison"), ("e4", b"four")])

        def runner() -> ConsumerRunner:
            return runner_for(engine, topic, handler, dlt, max_attempts=2)

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

        record = await first_dead_letter(dlt)
        assert record.value == b"poison"
        assert dict(record.headers)["source_topic"] == topic.encode()


async def _equals(value, expected) -> bool:  # type: ignore[no-untyped-def]
    return (await value) == expected


async def run_until_parked(
    engine: AsyncEngine, topic: str, handle: Handler, dlt: str, *, applied: int
) -> ConsumerRecord:
    """Runs a runner (two attempts a record) until `applied` records are in and one is parked;
    the parked one."""
    runner = runner_for(engine, topic, handle, dlt, max_attempts=2)
    task = asyncio.create_task(runner.run())
    await eventually(lambda: _equals(count(engine, topic), applied), timeout=20.0)
    parked = await first_dead_letter(dlt)
    runner.stop()
    await asyncio.wait_for(task, 10)
    return parked


class TestBatches:
    async def test_a_batch_is_one_transaction_and_its_poison_record_costs_the_others_nothing(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        await create_consumed(engine)
        topic, dlt = kafka_topic("consumer-batch"), kafka_topic("consumer-batch-dlt")
        # Published before the runner starts, so one fetch brings them all: one batch.
        values = [b"poison" if i == 5 else str(i).encode() for i in range(10)]
        await produce(topic, [(f"b{i}", value) for i, value in enumerate(values)])
        runs: Counter[bytes] = Counter()
        transaction_of: dict[bytes, int] = {}
        committed: list[bytes] = []

        async def note(value: bytes) -> None:
            committed.append(value)

        async def handle(session: AsyncSession, record: ConsumerRecord) -> None:
            runs[record.value] += 1
            transaction_of[record.value] = int(await session.scalar(text("SELECT txid_current()")) or 0)
            await handler(session, record)
            after_commit(session, lambda: note(record.value))

        parked = await run_until_parked(engine, topic, handle, dlt, applied=9)

        good = [value for value in values if value != b"poison"]
        assert parked.value == b"poison"
        assert sorted(committed) == sorted(good)  # after-commit work once each, none for a rollback
        # The batch failed at the poison record: the ones before it were applied again without it
        # (one transaction), it was tried alone until parked, the rest went on together.
        assert len({transaction_of[value] for value in values[:5]}) == 1
        assert len({transaction_of[value] for value in values[6:]}) == 1
        assert transaction_of[values[0]] != transaction_of[values[6]]
        assert runs == {**{value: 2 for value in values[:5]}, b"poison": 3, **{value: 1 for value in values[6:]}}

    async def test_work_deferred_to_the_end_runs_once_a_batch_and_a_failure_there_is_halved_down(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        """Work deferred to the end of the transaction (`defer`) is one statement for the batch. When it fails, the records are
        not blamed one by one: halving the batch finds the poison one in a few transactions, and
        every other record is applied once."""
        await create_consumed(engine)
        topic, dlt = kafka_topic("consumer-deferred"), kafka_topic("consumer-deferred-dlt")
        values = [b"poison" if i == 5 else str(i).encode() for i in range(10)]
        await produce(topic, [(f"d{i}", value) for i, value in enumerate(values)])
        statements: list[tuple[int, bool]] = []  # (records, committed) of each deferred statement

        async def handle(session: AsyncSession, record: ConsumerRecord) -> None:
            async def insert_all(values: list[bytes]) -> None:
                statements.append((len(values), False))
                if b"poison" in values:
                    raise ValueError("cannot handle this batch")
                await session.execute(
                    text("INSERT INTO consumed (topic, value) SELECT :t, unnest(CAST(:vs AS text[]))"),
                    {"t": topic, "vs": [value.decode() for value in values]},
                )
                after_commit(session, lambda: committed(len(values)))

            defer(session, "consumed", record.value, insert_all)

        async def committed(size: int) -> None:
            statements.append((size, True))

        parked = await run_until_parked(engine, topic, handle, dlt, applied=9)

        assert parked.value == b"poison"
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT value FROM consumed WHERE topic = :t"), {"t": topic})).all()
        assert sorted(row.value for row in rows) == sorted(v.decode() for v in values if v != b"poison")
        # 10 fails, its first half (5) commits; 5 fails, 2 fails, the poison alone fails twice and
        # is parked; the last 4 commit together.
        attempted = [size for size, done in statements if not done]
        assert attempted == [10, 5, 5, 2, 1, 1, 4], statements
        assert sorted(size for size, done in statements if done) == [4, 5]


class TestDependencyOutage:
    async def test_a_redis_outage_is_waited_out_not_dead_lettered(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        await create_consumed(engine)
        topic = kafka_topic("consumer-redis-down")
        await produce(topic, [("r1", b"one")])
        failures = {"left": 4}  # more than max_attempts: a poison record would be parked by now

        async def redis_down_for_a_while(session: AsyncSession, record: ConsumerRecord) -> None:
            if failures["left"] > 0:
                failures["left"] -= 1
                raise RedisConnectionError("Error 111 connecting to 127.0.0.1. Connection refused.")
            await handler(session, record)

        parked: list[bytes] = []
        runner = runner_for(engine, topic, redis_down_for_a_while, kafka_topic("consumer-redis-dlt"), max_attempts=2)

        async def park(record: ConsumerRecord, failure: Exception | None) -> None:
            parked.append(record.value)

        runner._dead_letter = park  # type: ignore[method-assign]
        task = asyncio.create_task(runner.run())
        await eventually(lambda: _equals(count(engine, topic), 1), timeout=30.0)
        runner.stop()
        await asyncio.wait_for(task, 10)
        assert failures["left"] == 0
        assert parked == []

    async def test_a_deadlock_is_tried_again_at_once_not_waited_out(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        """Postgres aborting the batch's transaction to break a deadlock (SQLSTATE 40P01, as the
        server raises it) is a lost race, not a database outage: no pause, no outage warning."""
        await create_consumed(engine)
        topic = kafka_topic("consumer-deadlock")
        await produce(topic, [("d1", b"one")])
        deadlocks = {"left": 2}

        async def loses_two_races(session: AsyncSession, record: ConsumerRecord) -> None:
            if deadlocks["left"] > 0:
                deadlocks["left"] -= 1
                await session.execute(
                    text("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$")
                )
            await handler(session, record)

        runner = runner_for(engine, topic, loses_two_races, kafka_topic("consumer-deadlock-dlt"))
        caplog.set_level(logging.INFO, logger="pinstack.consumer")
        task = asyncio.create_task(runner.run())
        await eventually(lambda: _equals(count(engine, topic), 1), timeout=30.0)
        runner.stop()
        await asyncio.wait_for(task, 10)
        lines = [record.getMessage() for record in caplog.records if record.name == "pinstack.consumer"]
        retried = [line for line in lines if "the batch is tried again" in line]
        assert deadlocks["left"] == 0 and len(retried) == 2, lines
        assert not [line for line in lines if "a dependency" in line], lines


class TestMalformedEvents:
    async def test_a_payload_its_model_refuses_is_dead_lettered_at_once_with_the_error(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        await create_consumed(engine)
        topic, dlt = kafka_topic("consumer-malformed"), kafka_topic("consumer-malformed-dlt")
        malformed = Event(event_id="m1", type=USER_DELETED, aggregate_id="1", data={"id": "one"})
        valid = Event.of(UserDeleted(id=2), 2, event_id="m2")
        await publish(topic, [(event.headers(), event.model_dump_json().encode()) for event in (malformed, valid)])
        tried: list[str | None] = []

        async def revoke(session: AsyncSession, record: ConsumerRecord) -> None:
            tried.append(header(record, "event_id"))
            deleted = payload(record, UserDeleted)
            if deleted is not None:
                await session.execute(
                    text("INSERT INTO consumed (topic, value) VALUES (:t, :v)"), {"t": topic, "v": str(deleted.id)}
                )

        runner = runner_for(engine, topic, revoke, dlt)
        task = asyncio.create_task(runner.run())
        await eventually(lambda: _equals(count(engine, topic), 1), timeout=20.0)
        runner.stop()
        await asyncio.wait_for(task, 10)
        assert tried == ["m1", "m2"]  # tried once: no retry makes it fit, and the partition moved on

        parked = await first_dead_letter(dlt)
        assert parked.value == malformed.model_dump_json().encode()
        parked_headers = dict(parked.headers)
        assert parked_headers["source_topic"] == topic.encode()
        error = parked_headers["error"].decode()
        assert error.startswith("MalformedEvent: user_deleted v1: 1 validation error for UserDeleted\nid\n")
        assert "Input should be a valid integer" in error
