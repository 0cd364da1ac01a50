from collections.abc import Callable
from types import SimpleNamespace

import httpx
import pytest
from activity_support import Deliver, new_id, post_record
from fastapi import FastAPI

from pinstack_activity.config import Settings
from pinstack_activity.posts.consumers import post_event_handler
from pinstack_activity.users.consumers import user_event_handler
from pinstack_testing import handle_record


@pytest.fixture
def posts_url(service_server: Callable[..., str]) -> str:
    """A real posts service (with its users service): the fallback for posts not projected yet."""
    return service_server("posts", USERS_URL=service_server("users"))


@pytest.fixture
def settings(service_settings: Callable[..., Settings], posts_url: str) -> Settings:
    return service_settings(Settings, posts_url=posts_url)


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
