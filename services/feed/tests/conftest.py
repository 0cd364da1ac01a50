from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from feed_support import Deliver, DeliverBatch
from redis.asyncio import Redis

from pinstack_feed.config import Settings
from pinstack_feed.timeline.consumers import feed_event_handler
from pinstack_testing import handle_batch, handle_record


@pytest.fixture
def settings(service_settings: Callable[..., Settings]) -> Settings:
    return service_settings(Settings, celebrity_threshold=5, timeline_cap=50, backfill_count=20)


@pytest.fixture
def deliver(app: FastAPI, settings: Settings, redis: Redis, client: httpx.AsyncClient) -> Deliver:
    """Hand a record to the feed consumer in its own transaction, with the after-commit
    callbacks (the Redis writes), as the runner does."""
    handler = feed_event_handler(settings, redis)

    async def run(record: SimpleNamespace) -> None:
        await handle_record(app.state.sessionmaker, record, handler)

    return run


@pytest.fixture
def deliver_batch(app: FastAPI, settings: Settings, redis: Redis, client: httpx.AsyncClient) -> DeliverBatch:
    """Hand records to the feed consumer in one transaction, as the runner does with the records
    of a partition that arrived together."""
    handler = feed_event_handler(settings, redis)

    async def run(records: list[SimpleNamespace]) -> None:
        await handle_batch(app.state.sessionmaker, records, handler)

    return run
