from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from pinstack_kit.testing import REDIS_URL, app_client
from pinstack_users.config import Settings
from pinstack_users.main import create_app

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


@pytest.fixture
def settings(pg_database, redis_prefix: str, kafka_topic) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        environment="test",
        kafka_topic_prefix=kafka_topic(""),  # outbox rows name test topics, whoever relays them
        database_url=pg_database("users", MIGRATIONS),
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
    )


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(create_app(settings)) as client:
        yield client


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()
