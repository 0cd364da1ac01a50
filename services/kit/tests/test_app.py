"""build_app: an unreachable dependency answers 503 in the envelope, and readiness reports a
draining instance as not ready."""

import pytest
from fastapi import APIRouter
from redis.exceptions import ConnectionError as RedisConnectionError

from pinstack_kit.app import build_app
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.testing import app_client

pytestmark = pytest.mark.unit

router = APIRouter()


@router.get("/cached")
async def cached() -> None:
    raise RedisConnectionError("Error 111 connecting to 127.0.0.1:56379. Connection refused.")


def make_app():  # type: ignore[no-untyped-def]
    settings = BaseServiceSettings(service_name="app-test", environment="test")
    return build_app(settings, title="t", routers=[router], use_database=False, use_redis=False)


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
