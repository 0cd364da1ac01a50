import uuid
from pathlib import Path

import pytest
from fastapi import FastAPI
from notifications_support import Seed, new_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_notifications.config import Settings
from pinstack_notifications.main import create_app

SERVICES = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(pg_database, kafka_topic, users_url: str) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        environment="test",
        database_url=pg_database("notifications", SERVICES / "notifications" / "migrations"),
        users_url=users_url,
        kafka_topic_prefix=kafka_topic(uuid.uuid4().hex[:8]) + ".",  # topics and groups of this test only
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def seed(engine: AsyncEngine) -> Seed:
    """Put users into the recipients projection as the user events would; returns their ids."""

    async def add(count: int = 1) -> list[int]:
        ids = [new_id() for _ in range(count)]
        async with engine.begin() as conn:
            await conn.execute(text("INSERT INTO users (id) VALUES (:id)"), [{"id": i} for i in ids])
        return ids

    return add
