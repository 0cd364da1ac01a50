"""Kafka consumer runner: idempotent handling, offsets committed after the database commit,
poison messages to a dead-letter topic.

Handlers read payloads with `payload(record, Model, ...)`. A record that fails again and again
is parked in the dead-letter topic after `max_attempts`, one whose payload does not fit its
catalogue model (`MalformedEvent`) at once; the parked copy carries the failure in an `error`
header.

The records of a partition that arrive together are handled in one transaction, in order,
together with one insert into `processed_events` of their keys: the record's `event_id` header (or
topic/partition/offset when absent). A redelivered record finds its key and is skipped, so
handlers apply every event exactly once; a batch costs one claim and one commit instead of one of
each per record (under load most of a consumer's time went to those). When a handler fails, the
transaction rolls back as a whole (handlers write to the database and defer the rest to
`after_commit`, so nothing escaped it): the records before the failing one are applied again
without it, and it is retried alone, then parked. Handlers may also defer statements to the end
of the transaction (`pinstack_kit.db.defer`: one statement for the whole batch); when those
fail, the batch is halved until the failing record is alone. A dependency that is down is waited for,
never blamed on a record; a transaction Postgres aborted to break a deadlock with an API
request's is tried again at once. Offsets are committed only after the transactions of the
records they cover have committed.

`stop()` (SIGTERM) ends the runner gracefully: it fetches nothing more, finishes the transaction
in hand, commits the offsets of what it handled and leaves the group, so the partitions move to
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
from pinstack_kit.db import lost_a_race, run_after_commit, run_before_commit
from pinstack_kit.observability import OutageLog
from pinstack_kit.outbox import ProducerFactory, create_producer, sleep_until

log = logging.getLogger("pinstack.consumer")

Handler = Callable[[AsyncSession, ConsumerRecord], Awaitable[None]]

# Failures that mean "a dependency is unreachable", not "this record is poison".
OUTAGES = (OperationalError, InterfaceError, OSError, RedisConnectionError, RedisTimeoutError)
# A batch that lost a race (`lost_a_race`: an API request's transaction locked the same rows) is
# tried again at once, up to this many times in a row before it is waited for like an outage.
RACES_IN_A_ROW = 3


# Claims the batch's keys; returns the ones not seen before.
_CLAIM = text(
    "INSERT INTO processed_events (consumer, event_key)"
    " SELECT :consumer, key FROM unnest(CAST(:keys AS text[])) AS key"
    " ON CONFLICT DO NOTHING RETURNING event_key"
)

# Gives back the claims of records a transaction stopped short of.
_RELEASE = text("DELETE FROM processed_events WHERE consumer = :consumer AND event_key = ANY(CAST(:keys AS text[]))")
# A transaction takes the records that arrived together, up to this long: a stop waits for no
# more, and locks are not held for longer.
TRANSACTION_SECONDS = 0.25

CONSUMED = Counter("kafka_consumed_total", "Records consumed", ["group", "topic", "outcome"])
CONSUMER_LAG = Gauge("kafka_consumer_lag", "Records behind the end of the partition", ["group", "topic"])


class Failed(Exception):
    """Handling a batch failed at its `index`-th record (the cause is chained)."""

    def __init__(self, index: int) -> None:
        super().__init__(f"failed at record {index}")
        self.index = index


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
                done = await self._handle(records)
                if done:
                    handled = records[done - 1]
                    await consumer.commit({tp: handled.offset + 1})
                    end = consumer.highwater(tp)
                    if end is not None:
                        CONSUMER_LAG.labels(self.group_id, tp.topic).set(max(0, end - handled.offset - 1))
                if self._stopping:
                    log.info("consumer %s: stopping, offsets committed", self.group_id)
                    return

    async def _handle(self, records: list[ConsumerRecord]) -> int:
        """Applies `records` (one partition's, in order) or parks the poison ones in the
        dead-letter topic; how many, from the first, were handled: fewer than all only when the
        runner stops."""
        done, end = 0, len(records)  # records[done:end] is the next transaction
        attempt, outage, races = 0, 0, 0
        while done < len(records) and not self._stopping:
            self.beat = time.monotonic()
            try:
                taken = await self._apply(records[done:end])
            except OUTAGES as exc:
                # A dependency (the database, Redis) is down, not the message bad: wait for it,
                # never dead-letter.
                if self._stopping:
                    break  # uncommitted: the next member of the group gets them again
                if lost_a_race(exc) and races < RACES_IN_A_ROW:
                    races += 1
                    log.info("consumer %s: %s; the batch is tried again", self.group_id, getattr(exc, "orig", exc))
                    continue
                outage += 1
                self.dependency_outage.down(exc)
                await self._pause(min(0.5 * outage, 5.0))
                continue
            except Failed as failed:
                end = done + max(failed.index, 1)  # the records before the failing one, or it alone
                if failed.index > 0:
                    continue
                attempt += 1
                if not self._gives_up(records[done], failed.__cause__, attempt):
                    await asyncio.sleep(0.2 * attempt)
                    continue
                await self._dead_letter(records[done], failed.__cause__)
                taken = 1
            self.dependency_outage.up()
            done, end, attempt, outage, races = done + taken, len(records), 0, 0, 0
        return done

    def _gives_up(self, record: ConsumerRecord, failure: BaseException | None, attempt: int) -> bool:
        key = event_key(record)
        if isinstance(failure, MalformedEvent):
            log.warning("consumer %s: %s is malformed: %s", self.group_id, key, failure)
            return True  # it will never fit: trying again only holds up the partition
        log.error("consumer %s: %s failed (attempt %d)", self.group_id, key, attempt, exc_info=failure)
        return attempt >= self.max_attempts

    async def _apply(self, records: list[ConsumerRecord]) -> int:
        """`records` in one transaction, each once (the ones whose key is already in
        `processed_events` are skipped); how many, from the first: all of them unless the runner
        stops or the transaction has run for `TRANSACTION_SECONDS`, then those handled so far.
        A failure other than an outage is raised as `Failed` naming the record it happened at."""
        keys = [event_key(record) for record in records]
        at = taken = 0
        try:
            async with self.sessionmaker() as session:
                async with session.begin():
                    fresh = set(await session.scalars(_CLAIM, {"consumer": self.group_id, "keys": keys}))
                    applied, began = 0, time.monotonic()
                    for at, (record, key) in enumerate(zip(records, keys, strict=True)):
                        if at and (self._stopping or time.monotonic() - began > TRANSACTION_SECONDS):
                            # The rest is the next transaction's: release what this one claimed of it.
                            if fresh:
                                await session.execute(_RELEASE, {"consumer": self.group_id, "keys": list(fresh)})
                            break
                        taken = at + 1
                        if key in fresh:
                            fresh.discard(key)  # a key twice in one batch is applied once
                            await self.handler(session, record)
                            await session.flush()  # the next record's statements see this one's objects
                            applied += 1
                    # Work deferred to the end (`defer`) or the commit itself: no record's
                    # in particular. Blaming the middle halves the batch until a poison record
                    # is alone, in a few transactions rather than one per record.
                    at = taken // 2
                    await run_before_commit(session)
                await run_after_commit(session)
        except OUTAGES:
            raise
        except Exception as exc:
            raise Failed(at) from exc
        topic = records[0].topic
        CONSUMED.labels(self.group_id, topic, "ok").inc(applied)
        CONSUMED.labels(self.group_id, topic, "duplicate").inc(taken - applied)
        return taken

    async def _dead_letter(self, record: ConsumerRecord, failure: BaseException | None) -> None:
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
