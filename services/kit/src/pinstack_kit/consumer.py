"""Kafka consumer runner: idempotent handling, offsets committed after the database commit,
poison messages to a dead-letter topic.

Handlers read payloads with `payload(record, Model, ...)`. A record that fails again and again
is parked in the dead-letter topic after `max_attempts`, one whose payload does not fit its
catalogue model (`MalformedEvent`) at once; the parked copy carries the failure in an `error`
header.

Each record is handled in its own transaction together with an insert into `processed_events`
keyed by the record's `event_id` header (or topic/partition/offset when absent): a redelivered
record finds its key and is skipped, so handlers apply every event exactly once. Offsets are
committed only after the transactions of the records they cover have committed.

`stop()` (SIGTERM) ends the runner gracefully: it fetches nothing more, finishes the record in
hand, commits the offsets of what it handled and leaves the group, so the partitions move to
another member at once instead of after the session timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy import text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pinstack_contracts.events import MalformedEvent, Payload, read
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.db import run_after_commit
from pinstack_kit.observability import OutageLog
from pinstack_kit.outbox import ProducerFactory, create_producer, sleep_until

log = logging.getLogger("pinstack.consumer")

Handler = Callable[[AsyncSession, ConsumerRecord], Awaitable[None]]

# Failures that mean "a dependency is unreachable", not "this record is poison".
OUTAGES = (OperationalError, InterfaceError, OSError, RedisConnectionError, RedisTimeoutError)

CONSUMED = Counter("kafka_consumed_total", "Records consumed", ["group", "topic", "outcome"])
CONSUMER_LAG = Gauge("kafka_consumer_lag", "Records behind the end of the partition", ["group", "topic"])


def header(record: ConsumerRecord, name: str) -> str | None:
    for key, value in record.headers or ():
        if key == name:
            return value.decode("utf-8", "replace") if value is not None else None
    return None


P = TypeVar("P", bound=Payload)


def payload(record: ConsumerRecord, *models: type[P]) -> P | None:
    """The record's payload as the one of `models` its headers name; None for other types."""
    return read(record.value, header(record, "event_type"), header(record, "version"), models)


def event_key(record: ConsumerRecord) -> str:
    event_id = header(record, "event_id")
    if event_id:
        return f"{record.topic}:{event_id}"
    return f"{record.topic}:{record.partition}:{record.offset}"


class ConsumerRunner:
    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        topics: list[str],
        handler: Handler,
        sessionmaker: async_sessionmaker[AsyncSession],
        producer_factory: ProducerFactory,
        dead_letter_topic: str,
        max_attempts: int = 3,
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.group_id = group_id
        self.topics = topics
        self.handler = handler
        self.sessionmaker = sessionmaker
        self.producer_factory = producer_factory
        self.dead_letter_topic = dead_letter_topic
        self.max_attempts = max_attempts
        self._stopping = False
        self._stopped = asyncio.Event()
        self.beat = time.monotonic()  # each poll, retry and wait: the worker's liveness reads it
        # An outage is two log lines (down, back), not one per retry.
        self.kafka_outage = OutageLog(log, f"consumer {group_id}: kafka")
        self.dependency_outage = OutageLog(log, f"consumer {group_id}: a dependency")

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()

    async def _pause(self, seconds: float) -> None:
        """Sleep for a retry backoff, but wake at once when asked to stop."""
        self.beat = time.monotonic()
        await sleep_until(self._stopped, seconds)

    async def run(self) -> None:
        backoff = 0.5
        while not self._stopping:
            consumer = AIOKafkaConsumer(
                *self.topics,
                bootstrap_servers=self.bootstrap_servers,
                group_id=self.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                metadata_max_age_ms=5000,  # notice topics created after start quickly
            )
            try:
                await consumer.start()
                self.kafka_outage.up()
                backoff = 0.5
                await self._consume(consumer)
            except (KafkaError, OSError) as exc:
                if self._stopping:
                    break
                self.kafka_outage.down(exc)
                await self._pause(backoff)
                backoff = min(backoff * 2, 10.0)
            finally:
                try:
                    # Leaves the group; commits nothing by itself: offsets were committed per batch.
                    await consumer.stop()
                except Exception:
                    log.debug("consumer stop failed", exc_info=True)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping:
            self.beat = time.monotonic()
            batches = await consumer.getmany(timeout_ms=500, max_records=200)
            for tp, records in batches.items():
                handled = None
                for record in records:
                    if self._stopping or not await self._handle(record):
                        break
                    handled = record
                if handled is not None:
                    await consumer.commit({tp: handled.offset + 1})
                    end = consumer.highwater(tp)
                    if end is not None:
                        CONSUMER_LAG.labels(self.group_id, tp.topic).set(max(0, end - handled.offset - 1))
                if self._stopping:
                    log.info("consumer %s: stopping, offsets committed", self.group_id)
                    return

    async def _handle(self, record: ConsumerRecord) -> bool:
        """Applies `record` once (or parks it in the dead-letter topic); False when it was left
        unhandled because the runner is stopping during an outage of a dependency."""
        key = event_key(record)
        attempt, outage = 0, 0
        failure: Exception | None = None
        while attempt < self.max_attempts:
            self.beat = time.monotonic()
            try:
                async with self.sessionmaker() as session:
                    async with session.begin():
                        fresh = await session.execute(
                            text(
                                "INSERT INTO processed_events (consumer, event_key) VALUES (:c, :k)"
                                " ON CONFLICT DO NOTHING"
                            ),
                            {"c": self.group_id, "k": key},
                        )
                        if fresh.rowcount == 0:  # type: ignore[attr-defined]
                            CONSUMED.labels(self.group_id, record.topic, "duplicate").inc()
                            return True
                        await self.handler(session, record)
                    await run_after_commit(session)
                self.dependency_outage.up()
                CONSUMED.labels(self.group_id, record.topic, "ok").inc()
                return True
            except OUTAGES as exc:
                # A dependency (the database, Redis) is down, not the message bad: wait for it,
                # never dead-letter.
                if self._stopping:
                    return False  # uncommitted: the next member of the group gets it again
                outage += 1
                self.dependency_outage.down(exc)
                await self._pause(min(0.5 * outage, 5.0))
            except MalformedEvent as exc:
                log.warning("consumer %s: %s is malformed: %s", self.group_id, key, exc)
                failure = exc
                break  # it will never fit: trying again only holds up the partition
            except Exception as exc:
                attempt += 1
                failure = exc
                log.exception("consumer %s: %s failed (attempt %d)", self.group_id, key, attempt)
                await asyncio.sleep(0.2 * attempt)
        await self._dead_letter(record, failure)
        return True

    async def _dead_letter(self, record: ConsumerRecord, failure: Exception | None) -> None:
        """Park a poison record so the partition keeps moving; it is never silently dropped."""
        CONSUMED.labels(self.group_id, record.topic, "dead_letter").inc()
        producer = self.producer_factory()
        await producer.start()
        try:
            headers = [
                *(record.headers or ()),
                ("source_topic", record.topic.encode()),
                ("error", f"{type(failure).__name__}: {failure}".encode()),
            ]
            await producer.send_and_wait(self.dead_letter_topic, value=record.value, key=record.key, headers=headers)
        finally:
            await producer.stop()


def consumer_for(
    settings: BaseServiceSettings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    group: str,
    topics: list[str],
    handler: Handler,
) -> ConsumerRunner:
    """A runner wired the usual way: the service's Kafka, prefixed topics, `<group>.dlt`.

    The group is prefixed like the topics: environments sharing a cluster never share a group.
    """
    return ConsumerRunner(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=settings.topic(group),
        topics=[settings.topic(t) for t in topics],
        handler=handler,
        sessionmaker=sessions,
        producer_factory=lambda: create_producer(settings.kafka_bootstrap_servers, f"{group}-dlt"),
        dead_letter_topic=settings.topic(f"{group}.dlt"),
    )
