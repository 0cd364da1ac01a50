"""Envelope, time formats, error rendering and the observability middleware (no servers)."""

from datetime import UTC, datetime

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from pinstack_kit.envelope import ok, rfc3339, rfc3339_nano
from pinstack_kit.errors import Conflict, install_error_handlers
from pinstack_kit.observability import ObservabilityMiddleware

pytestmark = pytest.mark.unit


class TestTimeFormats:
    def test_users_and_posts_use_whole_seconds_in_utc(self) -> None:
        assert rfc3339(datetime(2025, 8, 17, 12, 34, 56, 789000, tzinfo=UTC)) == "2025-08-17T12:34:56Z"

    @pytest.mark.parametrize(
        ("micro", "expected"),
        [(123456, "2025-08-17T12:34:56.123456Z"), (120000, "2025-08-17T12:34:56.12Z"), (0, "2025-08-17T12:34:56Z")],
    )
    def test_notifications_trim_trailing_zeros_like_go(self, micro: int, expected: str) -> None:
        assert rfc3339_nano(datetime(2025, 8, 17, 12, 34, 56, micro, tzinfo=UTC)) == expected


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware)
    router = APIRouter(prefix="/things")

    @router.get("/{thing_id}")
    async def get_thing(thing_id: int):  # type: ignore[no-untyped-def]
        if thing_id == 9:
            raise Conflict("thing already exists")
        if thing_id == 13:
            raise RuntimeError("boom")
        return ok({"id": thing_id})

    app.include_router(router)
    return app


@pytest.fixture
async def client():  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        yield client


class TestEnvelopeAndErrors:
    async def test_success_and_app_errors_use_the_envelope(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/things/1")).json() == {"status": 200, "data": {"id": 1}}
        assert (await client.get("/things/9")).json() == {"status": 409, "message": "thing already exists"}

    async def test_router_and_unexpected_errors_are_envelopes_too(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/nowhere")).json() == {"status": 404, "message": "not found"}
        wrong_method = await client.post("/things/1")
        assert wrong_method.json() == {"status": 405, "message": "method not allowed"}
        assert wrong_method.headers["allow"] == "GET"
        assert (await client.get("/things/13")).json() == {"status": 500, "message": "internal server error"}
        assert (await client.get("/things/abc")).json() == {"status": 400, "message": "invalid input"}


class TestObservability:
    async def test_request_id_is_echoed_or_generated(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/things/1", headers={"x-request-id": "abc-123"})).headers["x-request-id"] == "abc-123"
        generated = (await client.get("/things/1", headers={"x-request-id": "bad id\n"})).headers["x-request-id"]
        assert len(generated) == 32

    async def test_metrics_are_labelled_by_route_template_not_raw_path(self, client: httpx.AsyncClient) -> None:
        def count(route: str) -> float:
            labels = {"method": "GET", "route": route, "status": "200"}
            return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

        before = count("/things/{thing_id}")
        for thing in (1, 2, 3):
            await client.get(f"/things/{thing}")
        assert count("/things/{thing_id}") == before + 3
        assert count("/things/1") == 0
