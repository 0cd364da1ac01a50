"""Password hashing within the machine's means: a burst past the hashing capacity is shed at once
(503 with Retry-After) and leaves no account behind; a request past its deadline writes nothing."""

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pinstack_testing import app_client
from pinstack_users.config import Settings
from pinstack_users.main import create_app

pytestmark = pytest.mark.integration


def new_user() -> dict[str, str]:
    name = f"o{uuid.uuid4().hex[:12]}"
    return {"username": name, "email": f"{name}@example.com", "password": "correct horse"}


async def existing(settings: Settings, names: list[str]) -> set[str]:
    engine = create_async_engine(settings.database_url)
    async with engine.connect() as conn:
        found = await conn.scalars(text("SELECT username FROM users WHERE username = ANY(:n)"), {"n": names})
        result = set(found)
    await engine.dispose()
    return result


class TestHashingCapacity:
    async def test_a_burst_is_served_up_to_capacity_and_shed_beyond_it(
        self, service_settings: Callable[..., Settings]
    ) -> None:
        settings = service_settings(Settings, password_hash_concurrency=1, password_hash_queue=2)
        bodies = [new_user() for _ in range(20)]
        async with app_client(create_app(settings)) as client:

            async def register(body: dict[str, str]) -> tuple[httpx.Response, float]:
                started = time.perf_counter()
                response = await client.post("/users", json=body)
                return response, time.perf_counter() - started

            answers = await asyncio.gather(*(register(b) for b in bodies))
            # Other routes answer meanwhile and afterwards, and capacity is back at once.
            assert (await client.get("/users/search", params={"query": "o"})).status_code == 200
            assert (await client.post("/users", json=new_user())).status_code == 201

        created = {b["username"] for b, (r, _) in zip(bodies, answers, strict=True) if r.status_code == 201}
        shed = [(b, r, t) for b, (r, t) in zip(bodies, answers, strict=True) if r.status_code != 201]
        assert 3 <= len(created) < 20  # one hashing, two waiting: at least those
        for _, response, seconds in shed:
            assert response.status_code == 503
            assert response.json() == {"status": 503, "message": "external service unavailable"}
            assert response.headers["Retry-After"] == "1"
            assert seconds < 1.0
        assert await existing(settings, [b["username"] for b in bodies]) == created

    async def test_logins_share_the_same_capacity(self, service_settings: Callable[..., Settings]) -> None:
        settings = service_settings(Settings, password_hash_concurrency=1, password_hash_queue=0)
        body = new_user()
        async with app_client(create_app(settings)) as client:
            assert (await client.post("/users", json=body)).status_code == 201
            login = {"login": body["username"], "password": body["password"]}
            answers = await asyncio.gather(*(client.post("/credentials/verify", json=login) for _ in range(10)))
        statuses = sorted(r.status_code for r in answers)
        assert statuses[0] == 200 and statuses[-1] == 503
        assert set(statuses) == {200, 503}


class TestDeadline:
    async def test_a_registration_whose_caller_gave_up_creates_nothing(
        self, service_settings: Callable[..., Settings]
    ) -> None:
        settings = service_settings(Settings, password_hash_concurrency=1, password_hash_max_wait_seconds=10)
        bodies = [new_user() for _ in range(12)]
        async with app_client(create_app(settings)) as client:
            answers = await asyncio.gather(
                *(client.post("/users", json=b, headers={"X-Request-Timeout-Ms": "60"}) for b in bodies)
            )
        statuses = [r.status_code for r in answers]
        assert 504 in statuses, statuses  # a dozen hashes one at a time cannot all finish in 60 ms
        assert set(statuses) <= {201, 504}
        late = [r for r in answers if r.status_code == 504]
        assert all(r.json() == {"status": 504, "message": "external service timeout"} for r in late)
        created = {b["username"] for b, r in zip(bodies, answers, strict=True) if r.status_code == 201}
        assert await existing(settings, [b["username"] for b in bodies]) == created
