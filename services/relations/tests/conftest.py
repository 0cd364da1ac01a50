import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from relations_support import Seed, new_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_kit.db import create_engine
from pinstack_kit.worker import Loop
from pinstack_relations.config import Settings
from pinstack_relations.main import create_app

SERVICES = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def users_url(service_server: Callable[[str], str]) -> str:
    """A real users server: the fallback for users the projection has not seen yet."""
    return service_server("users")


@pytest.fixture
def settings(pg_database, kafka_topic, users_url: str) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        environment="test",
        database_url=pg_database("relations", SERVICES / "relations" / "migrations"),
        users_url=users_url,
        kafka_topic_prefix=kafka_topic(uuid.uuid4().hex[:8]) + ".",  # topics and groups of this test only
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture
def seed(engine: AsyncEngine) -> Seed:
    """Put users into the projection as the user events would; returns their ids."""

    async def add(count: int = 1, *, avatar_url: str | None = None) -> list[int]:
        ids = [new_id() for _ in range(count)]
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO users (id, username, avatar_url) VALUES (:id, :username, :avatar_url)"),
                [{"id": i, "username": f"user{i}", "avatar_url": avatar_url} for i in ids],
            )
        return ids

    return add


@pytest.fixture
async def start() -> AsyncIterator[Callable[[Loop], None]]:
    """Runs worker loops (relay, consumers) as tasks of the test; stops them at teardown."""
    loops: list[Loop] = []
    tasks: list[asyncio.Task[None]] = []

    def run(loop: Loop) -> None:
        loops.append(loop)
        tasks.append(asyncio.create_task(loop.run()))

    yield run
    for loop in loops:
        loop.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=20)
