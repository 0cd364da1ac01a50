from pathlib import Path

import pytest
from fastapi import FastAPI

from pinstack_kit.testing import REDIS_URL
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
def app(settings: Settings) -> FastAPI:
    return create_app(settings)
