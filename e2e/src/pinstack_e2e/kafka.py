"""Watch a Kafka topic from now on, read-only, with a fresh consumer group.

The watcher runs aiokafka in its own thread and event loop and collects every message that
arrives after `start()` returned; tests look for theirs with `eventually(watcher.matching...)`.
It never commits offsets and never produces.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer

from pinstack_e2e.wait import eventually


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]


class TopicWatcher:
    def __init__(self, bootstrap: str, topic: str) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.group_id = f"e2e-watch-{uuid.uuid4().hex[:12]}"
        self.messages: list[Message] = []
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"watch-{topic}", daemon=True)

    def __enter__(self) -> TopicWatcher:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        """Returns once the consumer sits at the end of every partition of the topic."""
        self._thread.start()
        eventually(
            lambda: self._ready.is_set() or self.error is not None,
            bool,
            what=f"a consumer positioned at the end of {self.topic} on {self.bootstrap}",
            timeout=30.0,
        )
        if self.error is not None:
            raise AssertionError(f"cannot watch {self.topic}: {self.error!r}") from self.error

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15.0)

    def matching(self, **headers: str) -> list[Message]:
        with self._lock:
            return [m for m in self.messages if all(m.headers.get(k) == v for k, v in headers.items())]

    def _run(self) -> None:
        try:
            asyncio.run(self._consume())
        except BaseException as exc:  # surfaced to the test through `start()` / `error`
            self.error = exc

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap,
            group_id=self.group_id,
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            consumer.subscribe([self.topic])
            # Joining the group assigns the partitions; a fresh group starts at their ends.
            while not consumer.assignment():
                if self._stop.is_set():
                    return
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():  # resolve the end offsets now, before the test acts
                await consumer.position(tp)
            self._ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                for records in batches.values():
                    with self._lock:
                        self.messages.extend(_message(r) for r in records)
        finally:
            await consumer.stop()


def _message(record: Any) -> Message:
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ())}
    return Message(record.topic, record.partition, record.offset, record.key, record.value, headers)
