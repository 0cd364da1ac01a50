from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from activity_support import MIGRATIONS, Deliver, new_id, post_record
from fastapi import FastAPI

from pinstack_activity.config import Settings
from pinstack_activity.main import create_app
from pinstack_activity.posts.consumers import post_event_handler
from pinstack_activity.users.consumers import user_event_handler
from pinstack_kit.testing import handle_record


@pytest.fixture
def posts_url(service_server: Callable[..., str]) -> str:
    """A real posts service (with its users service): the fallback for posts not projected yet."""
    return service_server("posts", USERS_URL=service_server("users"))


@pytest.fixture
def settings(pg_database: Callable[[str, Path], str], posts_url: str, kafka_topic: Callable[[str], str]) -> Settings:
    return Settings(
        environment="test",
        database_url=pg_database("activity", MIGRATIONS),
        posts_url=posts_url,
        # Outbox rows name test topics: a relay test on this shared database publishes every
        # test's rows, and must never write to the real `activity-events` of a running stack.
        kafka_topic_prefix=kafka_topic(""),
    )


@pytest.fixture
async def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def deliver(app: FastAPI, settings: Settings, client: httpx.AsyncClient) -> Deliver:
    """Hand a record to the activity consumer in its own transaction, as the runner does."""
    handlers = [post_event_handler(settings), user_event_handler()]

    async def run(record: SimpleNamespace) -> None:
        await handle_record(app.state.sessionmaker, record, *handlers)

    return run


@pytest.fixture
async def post(deliver: Deliver) -> dict[str, int]:
    """A post the projection knows, by a fresh author."""
    post = {"id": new_id(), "author_id": new_id()}
    await deliver(post_record("post_created", post["id"], post["author_id"]))
    return post
