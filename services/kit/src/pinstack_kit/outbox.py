"""Transactional outbox and its relay to Kafka.

A change and its event commit together (`enqueue` in the request's session, or `EventRow` in
the very statement that makes the change). The relay publishes unsent rows in id order with an
idempotent producer (acks=all) and marks them sent in the same database transaction that locked
them, so a crash before the mark only causes a redelivery, which consumers deduplicate. Several
replicas are safe: a transaction-level advisory lock lets one relay publish at a time per
database, so events of one key keep their order; the others take over at once when it stops.
The relay sleeps on Postgres `LISTEN outbox` and polls only as a fallback.

`stop()` (SIGTERM) lets the relay finish the batch it holds (publish, mark sent, commit), take
no further batch, and flush the producer before `run` returns; an unfinished batch rolls back and
is published again by the next relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping

import orjson
import psycopg
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import Counter, Gauge
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pinstack_contracts.events import Event
from pinstack_kit.migrate import plain_dsn
from pinstack_kit.observability import OutageLog

log = logging.getLogger("pinstack.outbox")

OUTBOX_PUBLISHED = Counter("outbox_published_total", "Outbox rows published to Kafka", ["topic"])
OUTBOX_ERRORS = Counter("outbox_relay_errors_total", "Failed relay rounds", ["reason"])
OUTBOX_BACKLOG = Gauge("outbox_backlog", "Outbox rows not yet published")

ProducerFactory = Callable[[], AIOKafkaProducer]

RELAY_LOCK = 0x6F7574626F78  # "outbox"

# One relay publishes at a time per database (the others are hot standbys): batches of two relays
# interleaving on the broker would break the per-key order consumers rely on. Without the lock
# the batch is empty, and a standby reports a backlog of 0: the dashboards sum the gauge over
# processes, so only the holder's count shows. Taking the lock and the rows in one statement is
# safe although its snapshot predates the lock: a row the previous holder marked sent meanwhile
# is re-checked when FOR UPDATE locks it (READ COMMITTED follows the update) and drops out.
_TAKE = text(
    "SELECT o.id, o.topic, o.key, o.value, o.headers"
    " FROM (SELECT pg_try_advisory_xact_lock(:lock) AS held) AS relay, outbox AS o"
    " WHERE relay.held AND o.sent_at IS NULL ORDER BY o.id LIMIT :n FOR UPDATE OF o SKIP LOCKED"
)
# Marks a batch sent and counts what is left (a data-modifying WITH runs whether read or not).
_MARK_SENT = text(
    "WITH sent AS (UPDATE outbox SET sent_at = now() WHERE id = ANY(:ids))"
    " SELECT count(*) FROM outbox WHERE sent_at IS NULL"
)

_INSERT = text("INSERT INTO outbox (topic, key, value, headers) VALUES (:topic, :key, :value, CAST(:headers AS jsonb))")


async def enqueue(
    session: AsyncSession,
    topic: str,
    key: str,
    value: bytes,
    headers: Mapping[str, str] | None = None,
) -> None:
    await session.execute(
        _INSERT, {"topic": topic, "key": key, "value": value, "headers": orjson.dumps(dict(headers or {})).decode()}
    )


async def enqueue_event(session: AsyncSession, topic: str, event: Event) -> None:
    await enqueue(session, topic, event.aggregate_id, event.model_dump_json().encode(), event.headers())


class EventRow:
    """An event's outbox row written by the statement that makes the change, as one of its CTEs
    (`cte`): one round trip fewer than `enqueue_event`. What only that statement knows (a
    generated id, a default time) is filled in from SQL expressions over the CTE `source`: the
    aggregate id (also the row's key) from the expression `aggregate_id`, as text, and each field
    of `data` from its expression, JSON-encoded by `to_json`. The rest of the event is serialised in
    Python, as `enqueue_event` does, so the value is byte for byte the one it would write.

    `data` lists the fields in the payload's wire order (the order they are spliced in). The CTE
    is named `outbox_row`: one event row per statement."""

    def __init__(self, source: str, aggregate_id: str, data: Mapping[str, str]) -> None:
        self.fields = ["aggregate_id", *data]
        expressions = [f"CAST({aggregate_id} AS text)", *data.values()]
        value = ", ".join(f"CAST(:outbox_{n} AS text), to_json({e})" for n, e in enumerate(expressions))
        self.cte = (
            "outbox_row AS (INSERT INTO outbox (topic, key, value, headers)"  # noqa: S608 - the caller's SQL
            f" SELECT :outbox_topic, CAST({aggregate_id} AS text),"
            f" convert_to(concat({value}, CAST(:outbox_{len(expressions)} AS text)), 'UTF8'),"
            f" CAST(:outbox_headers AS jsonb) FROM {source})"
        )

    def params(self, topic: str, event: Event) -> dict[str, str]:
        """The statement's parameters for `event`, whatever values its filled-in fields hold.
        Each such field is serialised as a marker holding a fresh random id, which no other
        value of the event can contain, and the JSON is cut at the markers."""
        marker = f"{uuid.uuid4().hex}:"
        data = {**event.data, **{name: marker + name for name in self.fields[1:]}}
        rest = event.model_copy(update={"aggregate_id": marker + "aggregate_id", "data": data}).model_dump_json()
        params = {"outbox_topic": topic, "outbox_headers": orjson.dumps(event.headers()).decode()}
        for n, name in enumerate(self.fields):
            params[f"outbox_{n}"], rest = rest.split(f'"{marker}{name}"', 1)
        params[f"outbox_{len(self.fields)}"] = rest
        return params


def create_producer(bootstrap_servers: str, client_id: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        enable_idempotence=True,  # implies acks=all
        acks="all",
        linger_ms=2,
        request_timeout_ms=10000,
        retry_backoff_ms=200,
    )


class OutboxRelay:
    def __init__(
        self,
        engine: AsyncEngine,
        producer_factory: ProducerFactory,
        *,
        batch_size: int = 200,
        poll_interval: float = 1.0,
        retention_hours: int = 24,
    ) -> None:
        self.engine = engine
        self.producer_factory = producer_factory
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.retention_hours = retention_hours
        self._wake = asyncio.Event()
        self._stopped = asyncio.Event()
        self._stopping = False
        self.beat = time.monotonic()  # each round, retry or idle wake: the worker's liveness reads it
        # An outage is two log lines (down, back), not one per retry.
        self.kafka_outage = OutageLog(log, "relay: kafka")
        self.database_outage = OutageLog(log, "relay: database")
        self.listen_outage = OutageLog(log, "relay: LISTEN connection (polling meanwhile)")

    def stop(self) -> None:
        self._stopping = True
        self._stopped.set()
        self._wake.set()

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen(), name="outbox-listen")
        producer: AIOKafkaProducer | None = None
        backoff = 0.5
        rounds = 0
        try:
            while not self._stopping:
                self.beat = time.monotonic()
                try:
                    if producer is None:
                        producer = self.producer_factory()
                        await producer.start()
                    # Cleared before reading, not after: a NOTIFY arriving while this round
                    # publishes keeps the event set, so its row goes out at once instead of
                    # waiting for the next poll (it had cost up to poll_interval, 1 s).
                    self._wake.clear()
                    while await self.publish_batch(producer) == self.batch_size and not self._stopping:
                        pass  # drain a backlog at full speed
                    rounds += 1
                    if rounds % 600 == 0:
                        await self.purge_sent()
                    backoff = 0.5
                    self.kafka_outage.up()
                    self.database_outage.up()
                except (KafkaError, OSError) as exc:
                    OUTBOX_ERRORS.labels("kafka").inc()
                    self.kafka_outage.down(exc)
                    if producer is not None:
                        await _quietly_stop(producer)
                        producer = None
                    await sleep_until(self._stopped, backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except (DBAPIError, psycopg.Error) as exc:
                    OUTBOX_ERRORS.labels("database").inc()
                    self.database_outage.down(exc)
                    await sleep_until(self._stopped, backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                except Exception:
                    OUTBOX_ERRORS.labels("other").inc()
                    log.exception("relay: round failed, retrying in %.1fs", backoff)
                    await sleep_until(self._stopped, backoff)
                    backoff = min(backoff * 2, 10.0)
                    continue
                if self._stopping:
                    break
                await sleep_until(self._wake, self.poll_interval)
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            if producer is not None:
                await _quietly_stop(producer)  # flushes what is in flight
            log.info("relay stopped")

    async def publish_batch(self, producer: AIOKafkaProducer) -> int:
        async with self.engine.begin() as conn:
            rows = (await conn.execute(_TAKE, {"lock": RELAY_LOCK, "n": self.batch_size})).all()
            if not rows:
                OUTBOX_BACKLOG.set(0)
                return 0
            futures = [
                await producer.send(
                    row.topic,
                    value=bytes(row.value),
                    key=row.key.encode(),
                    headers=[(k, str(v).encode()) for k, v in row.headers.items()],
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            backlog = await conn.scalar(_MARK_SENT, {"ids": [r.id for r in rows]})
        for row in rows:
            OUTBOX_PUBLISHED.labels(row.topic).inc()
        # the count's snapshot predates the mark: the rows just sent are still in it
        OUTBOX_BACKLOG.set(max(0, int(backlog or 0) - len(rows)))
        return len(rows)

    async def purge_sent(self) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                text("DELETE FROM outbox WHERE sent_at < now() - make_interval(hours => :h)"),
                {"h": self.retention_hours},
            )

    async def _listen(self) -> None:
        """Set the wake event on every NOTIFY; reconnect forever (Postgres may restart)."""
        dsn = plain_dsn(self.engine.url.render_as_string(hide_password=False))
        while not self._stopping:
            try:
                async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                    await conn.execute("LISTEN outbox")
                    self.listen_outage.up()
                    self._wake.set()  # catch up on anything committed while we were not listening
                    async for _ in conn.notifies():
                        self._wake.set()
            except (psycopg.Error, OSError) as exc:
                self.listen_outage.down(exc)
                await asyncio.sleep(1.0)


async def sleep_until(event: asyncio.Event, seconds: float) -> None:
    """Sleep until `event` is set or `seconds` passed (a backoff that `stop()` cuts short)."""
    try:
        await asyncio.wait_for(event.wait(), timeout=seconds)
    except TimeoutError:
        pass


async def _quietly_stop(producer: AIOKafkaProducer, timeout: float = 5.0) -> None:
    """Flush and close; bounded, because with the broker gone a flush can only time out (rows
    whose send was not acknowledged are not marked sent and go out again later)."""
    try:
        await asyncio.wait_for(producer.stop(), timeout=timeout)
    except Exception:  # the broker is already gone; nothing left to flush
        log.debug("producer stop failed", exc_info=True)
