import uuid

import pytest
from notifications_support import Seed, new_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_notifications.config import Settings


@pytest.fixture
def settings(service_settings, kafka_topic, users_url: str) -> Settings:  # type: ignore[no-untyped-def]
    # topics and consumer groups of this test only
    return service_settings(Settings, users_url=users_url, kafka_topic_prefix=kafka_topic(uuid.uuid4().hex[:8]) + ".")


@pytest.fixture
def seed(engine: AsyncEngine) -> Seed:
    """Put users into the recipients projection as the user events would; returns their ids."""

    async def add(count: int = 1) -> list[int]:
        ids = [new_id() for _ in range(count)]
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id) VALUES (:id)"), [{"id": i} for i in ids])
        return ids

    return add
