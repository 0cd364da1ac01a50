"""Envelope, time formats, error rendering and the observability middleware (no servers)."""

import asyncio
import time
from datetime import UTC, datetime

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from prometheus_client import REGISTRY

from pinstack_kit import observability
from pinstack_kit.envelope import ok, rfc3339, rfc3339_nano
from pinstack_kit.errors import Conflict, install_error_handlers
from pinstack_kit.observability import RequestMiddleware, metrics_endpoint

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
    app.add_middleware(RequestMiddleware)
    router = APIRouter(prefix="/things")

    @router.get("/{thing_id}")
    async def get_thing(thing_id: int):  # type: ignore[no-untyped-def]
        if thing_id == 9:
            raise Conflict("thing already exists")
        if thing_id == 13:
            raise RuntimeError("boom")
        return ok({"id": thing_id})

    app.include_router(router)
    app.add_route("/metrics", metrics_endpoint)
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

    async def test_labels_are_bounded_whatever_the_client_sends(self, client: httpx.AsyncClient) -> None:
        """Methods a route does not serve (a 405) and invented methods are `other`, paths that
        match no route `unmatched`: only the app's routes make series."""

        def count(method: str, route: str, status: str) -> float:
            labels = {"method": method, "route": route, "status": status}
            return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

        before = (count("other", "/things/{thing_id}", "405"), count("other", "unmatched", "404"))
        assert (await client.post("/things/1")).status_code == 405
        assert (await client.request("BREW", "/teapot/1")).status_code == 404
        assert (await client.request("BREW", "/teapot/2")).status_code == 404
        assert (await client.get("/teapot/3")).status_code == 404
        assert (count("other", "/things/{thing_id}", "405"), count("other", "unmatched", "404")) == (
            before[0] + 1,
            before[1] + 2,
        )
        assert (
            REGISTRY.get_sample_value(
                "http_requests_total", {"method": "POST", "route": "/things/{thing_id}", "status": "405"}
            )
            is None
        )
        assert "BREW" not in (await client.get("/metrics")).text
        # Latency is of what a route served; the router's refusals are counted only.
        for method, route in (("other", "/things/{thing_id}"), ("other", "unmatched"), ("GET", "unmatched")):
            labels = {"method": method, "route": route, "le": "+Inf"}
            assert REGISTRY.get_sample_value("http_request_duration_seconds_bucket", labels) is None

    async def test_metrics_render_off_the_event_loop(
        self, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A slow rendering holds no request behind it, and scrapes arriving meanwhile share it."""
        renders = []

        def slow_render() -> bytes:
            renders.append(time.monotonic())
            time.sleep(0.3)  # what a large registry costs on a busy machine
            return b"# rendered\n"

        monkeypatch.setattr(observability, "generate_latest", slow_render)
        finished: dict[str, float] = {}

        async def timed(name: str, path: str) -> httpx.Response:
            response = await client.get(path)
            finished[name] = time.monotonic()
            return response

        scrapes = [asyncio.create_task(timed(f"scrape{i}", "/metrics")) for i in range(2)]
        await asyncio.sleep(0.05)
        thing = await timed("thing", "/things/1")
        assert thing.status_code == 200
        assert [(await scrape).text for scrape in scrapes] == ["# rendered\n"] * 2
        assert finished["thing"] < min(finished["scrape0"], finished["scrape1"])
        assert len(renders) == 1
