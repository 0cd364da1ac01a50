"""Helpers shared by the notifications tests (a unique module name: every service has a conftest)."""

import uuid
from collections.abc import Awaitable, Callable

from pinstack_testing import kafka_producer

Seed = Callable[..., Awaitable[list[int]]]


def new_id() -> int:
    """A user id no other test (and no real users server) hands out."""
    return 10**12 + uuid.uuid4().int % 10**15


async def produce(topic: str, records: list[tuple[bytes, bytes, dict[str, str]]]) -> None:
    """Send (key, value, headers) records in order, as a producer of that topic would."""
    async with kafka_producer() as producer:
        for key, value, headers in records:
            await producer.send_and_wait(
                topic, value=value, key=key, headers=[(k, v.encode()) for k, v in headers.items()]
            )
