"""The outbox relay against the real PostgreSQL and Kafka."""

import asyncio
import contextlib
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_contracts.events import Event
from pinstack_kit.db import sessionmaker
from pinstack_kit.envelope import rfc3339, rfc3339_sql
from pinstack_kit.outbox import RELAY_LOCK, EventRow, OutboxRelay, create_producer, enqueue_event
from pinstack_testing import KAFKA, eventually

pytestmark = pytest.mark.integration


async def read_topic(topic: str, expected: int, timeout: float = 20.0) -> list:  # type: ignore[type-arg]
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", metadata_max_age_ms=500, group_id=None
    )
    await consumer.start()
    records = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(records) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for items in batch.values():
                records.extend(items)
        # a short grace period to catch duplicates arriving after the expected count
        batch = await consumer.getmany(timeout_ms=500)
        for items in batch.values():
            records.extend(items)
    finally:
        await consumer.stop()
    return records


@contextlib.asynccontextmanager
async def running(*relays: OutboxRelay):  # type: ignore[no-untyped-def]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]
    try:
        yield
    finally:
        for relay in relays:
            relay.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=15)


def relay(engine: AsyncEngine) -> OutboxRelay:
    return OutboxRelay(engine, lambda: create_producer(KAFKA, "test-relay"), batch_size=50)


class TestOutboxRelay:
    async def test_publishes_committed_events_with_key_and_headers(self, engine: AsyncEngine, kafka_topic) -> None:  # type: ignore[no-untyped-def]
        topic = kafka_topic("outbox-basic")
        events = [Event(type="thing_created", aggregate_id=str(i), data={"n": i}) for i in range(5)]
        async with sessionmaker(engine)() as session, session.begin():
            for event in events:
                await enqueue_event(session, topic, event)
        async with running(relay(engine)):
            records = await read_topic(topic, 5)
        assert sorted(r.key for r in records) == sorted(e.aggregate_id.encode() for e in events)
        headers = dict(records[0].headers)
        assert headers["event_type"] == b"thing_created"
        assert {dict(r.headers)["event_id"].decode() for r in records} == {e.event_id for e in events}

    async def test_rolled_back_events_are_never_published(self, engine: AsyncEngine, kafka_topic) -> None:  # type: ignore[no-untyped-def]
        topic = kafka_topic("outbox-rollback")
        async with sessionmaker(engine)() as session:
            await enqueue_event(session, topic, Event(type="ghost", aggregate_id="1", data={}))
            await session.rollback()
        async with sessionmaker(engine)() as session, session.begin():
            await enqueue_event(session, topic, Event(type="real", aggregate_id="2", data={}))
        async with running(relay(engine)):
            records = await read_topic(topic, 1)
        assert [dict(r.headers)["event_type"] for r in records] == [b"real"]

    async def test_two_relays_publish_each_row_exactly_once(self, engine: AsyncEngine, kafka_topic) -> None:  # type: ignore[no-untyped-def]
        topic = kafka_topic("outbox-competing")
        async with running(relay(engine), relay(engine)):
            for batch in range(10):
                async with sessionmaker(engine)() as session, session.begin():
                    for i in range(20):
                        await enqueue_event(session, topic, Event(type="t", aggregate_id=f"{batch}-{i}", data={}))
            records = await read_topic(topic, 200)
        assert len(records) == 200
        assert len({dict(r.headers)["event_id"] for r in records}) == 200

    async def test_wakes_on_notify_without_waiting_for_the_poll(self, engine: AsyncEngine, kafka_topic) -> None:  # type: ignore[no-untyped-def]
        topic = kafka_topic("outbox-notify")
        slow_poll = OutboxRelay(engine, lambda: create_producer(KAFKA, "test-relay"), poll_interval=30.0)
        async with running(slow_poll):
            await asyncio.sleep(1.0)  # let it connect, drain and go to sleep on LISTEN
            async with sessionmaker(engine)() as session, session.begin():
                await enqueue_event(session, topic, Event(type="fast", aggregate_id="1", data={}))

            async def sent() -> bool:
                async with engine.connect() as conn:
                    unsent = await conn.scalar(
                        text("SELECT count(*) FROM outbox WHERE topic = :t AND sent_at IS NULL"), {"t": topic}
                    )
                return unsent == 0

            await eventually(sent, timeout=5.0)

    async def test_a_relay_without_the_lock_takes_nothing_and_leaves_the_rows(  # type: ignore[no-untyped-def]
        self, engine: AsyncEngine, kafka_topic
    ) -> None:
        """The lock and the rows are taken in one statement (outbox._TAKE): while another relay
        holds the lock, a batch is empty and marks nothing; once it is free, the rows go out."""
        topic = kafka_topic("outbox-standby")
        async with sessionmaker(engine)() as session, session.begin():
            for i in range(3):
                await enqueue_event(session, topic, Event(type="t", aggregate_id=str(i), data={}))
        unsent = text("SELECT count(*) FROM outbox WHERE topic = :t AND sent_at IS NULL")
        standby = relay(engine)
        producer = create_producer(KAFKA, "test-relay")
        await producer.start()
        try:
            async with engine.connect() as holder:
                await holder.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": RELAY_LOCK})
                assert await standby.publish_batch(producer) == 0
                assert await holder.scalar(unsent, {"t": topic}) == 3
                await holder.rollback()
            sent = [await standby.publish_batch(producer)]
            while sent[-1] and len(sent) < 20:  # rows other tests left in this database may come first
                sent.append(await standby.publish_batch(producer))
            assert sum(sent) >= 3 and sent[-1] == 0, sent
        finally:
            await producer.stop()
        async with engine.connect() as conn:
            assert await conn.scalar(unsent, {"t": topic}) == 0
        assert len(await read_topic(topic, 3)) == 3


class TestEventRow:
    """An event written by the statement that makes the change (kit.outbox.EventRow)."""

    ROW = EventRow("src", aggregate_id="src.id", data={"id": "src.id", "at": rfc3339_sql("src.at")})
    # A stand-in for a change: a row per id, all at one time.
    STATEMENT = text(
        "WITH src AS (SELECT id, CAST(:at AS timestamptz) AS at FROM unnest(CAST(:ids AS bigint[])) AS id),"  # noqa: S608
        f" {ROW.cte} SELECT count(*) FROM src"
    )
    DATA: dict[str, Any] = {
        "id": 0,
        "title": 'a "quote", a \\ backslash, \u00e9, \U0001f600 and a \u2028 line separator',
        "at": "",
        "tags": ["a", "b"],
        "none": None,
    }

    async def rows(self, engine: AsyncEngine, topic: str) -> list[tuple[str, bytes, dict[str, str]]]:
        async with engine.connect() as conn:
            result = await conn.execute(
                text("SELECT key, value, headers FROM outbox WHERE topic = :t ORDER BY id"), {"t": topic}
            )
            return [(key, bytes(value), headers) for key, value, headers in result]

    async def test_writes_byte_for_byte_what_enqueue_event_would(self, engine: AsyncEngine) -> None:
        topic = f"event-row-{uuid.uuid4().hex}"
        at = datetime(2026, 3, 4, 5, 6, 7, 999_999, tzinfo=timezone(timedelta(hours=-3)))
        event = Event(type="thing_created", aggregate_id="0", data=self.DATA)
        async with sessionmaker(engine)() as session, session.begin():
            await session.execute(text("SET LOCAL TIME ZONE 'Asia/Kolkata'"))  # filled in UTC all the same
            await session.execute(self.STATEMENT, {"ids": [42], "at": at, **self.ROW.params(topic, event)})
            filled = {**self.DATA, "id": 42, "at": rfc3339(at)}
            await enqueue_event(session, topic, event.model_copy(update={"aggregate_id": "42", "data": filled}))
        written, expected = await self.rows(engine, topic)
        assert written == expected
        assert Event.model_validate_json(written[1]).data["at"] == "2026-03-04T08:06:07Z"

    async def test_a_statement_that_changes_nothing_writes_no_event(self, engine: AsyncEngine) -> None:
        topic = f"event-row-{uuid.uuid4().hex}"
        event = Event(type="thing_created", aggregate_id="0", data=self.DATA)
        async with sessionmaker(engine)() as session, session.begin():
            changed = await session.scalar(
                self.STATEMENT, {"ids": [], "at": datetime.now(UTC), **self.ROW.params(topic, event)}
            )
        assert changed == 0 and await self.rows(engine, topic) == []

    def test_fields_listed_out_of_wire_order_fail_loudly(self) -> None:
        reversed_row = EventRow("src", aggregate_id="src.id", data={"at": "src.at", "id": "src.id"})
        with pytest.raises(ValueError):
            reversed_row.params("t", Event(type="thing_created", aggregate_id="0", data=self.DATA))
