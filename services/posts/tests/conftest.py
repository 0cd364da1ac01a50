import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from posts_support import MIGRATIONS, UserEvent
from redis.asyncio import Redis

from pinstack_kit.testing import REDIS_URL, handle_record
from pinstack_posts.authors.consumers import user_event_handler
from pinstack_posts.config import Settings
from pinstack_posts.main import create_app


@pytest.fixture
def settings(pg_database: Callable[[str, Path], str], redis_prefix: str, kafka_topic: Callable[[str], str]) -> Settings:
    return Settings(
        environment="test",
        kafka_topic_prefix=kafka_topic(""),  # outbox rows name test topics, whoever relays them
        database_url=pg_database("posts", MIGRATIONS),
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
        users_url="http://127.0.0.1:9",  # nothing listens: tests that need users use `users_url`
    )


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    app = create_app(settings)
    yield app


@pytest.fixture
def user_event(app: FastAPI, settings: Settings, redis: Redis, client: httpx.AsyncClient) -> UserEvent:
    """Deliver a `user-events` record to the posts consumer, in its own transaction and with the
    after-commit callbacks, as the runner does."""
    handler = user_event_handler(settings, redis)

    async def deliver(kind: str, user: dict[str, Any]) -> dict[str, Any]:
        value = orjson.dumps({"event_id": uuid.uuid4().hex, "type": kind, "data": user})
        record = SimpleNamespace(value=value, headers=[("event_type", kind.encode())])
        await handle_record(app.state.sessionmaker, record, handler)
        return user

    return deliver
