import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from posts_support import UserEvent
from redis.asyncio import Redis

from pinstack_posts.config import Settings
from pinstack_posts.posts.consumers import user_event_handler
from pinstack_testing import handle_record


@pytest.fixture
def settings(service_settings: Callable[..., Settings]) -> Settings:
    # nothing listens at users_url: tests that need users use the `users_url` fixture
    return service_settings(Settings, users_url="http://127.0.0.1:9")


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
