from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from feed_support import MIGRATIONS, Deliver
from redis.asyncio import Redis

from pinstack_feed.config import Settings
from pinstack_feed.main import create_app
from pinstack_feed.timeline.consumers import feed_event_handler
from pinstack_kit.testing import REDIS_URL, handle_record


@pytest.fixture
def settings(pg_database: Callable[[str, Path], str], redis_prefix: str, kafka_topic: Callable[[str], str]) -> Settings:
    return Settings(
        environment="test",
        kafka_topic_prefix=kafka_topic(""),  # outbox rows name test topics, whoever relays them
        database_url=pg_database("feed", MIGRATIONS),
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        celebrity_threshold=5,
        timeline_cap=50,
        backfill_count=20,
    )


@pytest.fixture
async def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def deliver(app: FastAPI, settings: Settings, redis: Redis, client: httpx.AsyncClient) -> Deliver:
    """Hand a record to the feed consumer in its own transaction, with the after-commit
    callbacks (the Redis writes), as the runner does."""
    handler = feed_event_handler(settings, redis)

    async def run(record: SimpleNamespace) -> None:
        await handle_record(app.state.sessionmaker, record, handler)

    return run
