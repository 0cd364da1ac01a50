"""build_app: an unreachable dependency answers 503 in the envelope, readiness reports a
draining instance as not ready, and a request that never touches its database session costs no
transaction."""

from collections.abc import Iterator

import pytest
from fastapi import APIRouter
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from pinstack_kit.app import build_app
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.db import SessionDep
from pinstack_kit.envelope import ok
from pinstack_testing import app_client

pytestmark = pytest.mark.unit

router = APIRouter()


@router.get("/cached")
async def cached() -> None:
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:56379. Connection refused.")


@router.get("/from-cache")
async def from_cache(session: SessionDep) -> object:
    return ok({"served": "without the database"})


def make_app(use_database: bool = False):  # type: ignore[no-untyped-def]
    # No server listens there: a request that touched the database would fail.
    settings = BaseServiceSettings(
        service_name="app-test", environment="test", database_url="postgresql://nobody@127.0.0.1:9/none"
    )
    return build_app(settings, title="t", routers=[router], use_database=use_database, use_redis=False)


class TestDependencyErrors:
    async def test_redis_unreachable_is_a_503_not_a_500(self) -> None:
        async with app_client(make_app()) as client:
            response = await client.get("/cached")
        assert response.status_code == 503
        assert response.json() == {"status": 503, "message": "external service unavailable"}


class TestDraining:
    async def test_readiness_is_503_and_connections_close_once_draining(self) -> None:
        app = make_app()
        async with app_client(app) as client:
            assert (await client.get("/readyz")).status_code == 200
            assert "connection" not in (await client.get("/healthz")).headers
            app.state.draining = True  # what SIGTERM under uvicorn sets
            ready = await client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["message"] == "not ready: shutdown (ShuttingDown)"
            assert (await client.get("/healthz")).headers["connection"] == "close"


class TestRequestSession:
    @pytest.fixture
    def transactions(self) -> Iterator[list[SessionTransaction]]:
        begun: list[SessionTransaction] = []

        def created(session: Session, transaction: SessionTransaction) -> None:
            begun.append(transaction)

        event.listen(Session, "after_transaction_create", created)
        yield begun
        event.remove(Session, "after_transaction_create", created)

    async def test_a_request_that_never_used_its_session_begins_and_commits_nothing(
        self, transactions: list[SessionTransaction]
    ) -> None:
        async with app_client(make_app(use_database=True)) as client:
            response = await client.get("/from-cache")
        assert response.json() == {"status": 200, "data": {"served": "without the database"}}
        assert transactions == []  # a commit would have begun (and ended) one
