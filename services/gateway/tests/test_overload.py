"""Overload is shed, not timed out (issue 14): real users and auth servers whose password hashing
has room for one hash and three waiting, behind real gateways.

A burst far past that gets 201/200 or an immediate 503 with `Retry-After` (passed on by the
gateway), never a 504; no account exists behind a refusal; other routes keep answering and the
breakers stay closed; one client's burst leaves room for the others; and when the gateway's
deadline is too short for the work, the 504 it answers hides no account."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import httpx
import psycopg
import pytest

from pinstack_testing import REDIS_URL, free_port, spawn_service, worker_id

pytestmark = pytest.mark.contract

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "overload-pass-1"
_clients = count(1)


@dataclass(frozen=True)
class SmallStack:
    users_database: str
    gateway: Callable[..., str]  # a gateway in front of the backends, with these settings


@pytest.fixture(scope="module")
def small(pg_database: Callable[[str, Path], str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmallStack]:
    logs = tmp_path_factory.mktemp("logs")
    run = uuid.uuid4().hex[:8]
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in ("users", "auth")}
    common = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": REDIS_URL,
        "KAFKA_TOPIC_PREFIX": f"test.{worker_id()}.{run}.",
        **{f"{name.upper()}_URL": url for name, url in urls.items()},
    }
    users_db = pg_database("overload_users", REPO / "services/users/migrations")
    backends = {
        "users": {
            "DATABASE_URL": users_db,
            # One hash at a time, three waiting, however long (only the queue's length sheds).
            "PASSWORD_HASH_CONCURRENCY": "1",
            "PASSWORD_HASH_QUEUE": "3",
            "PASSWORD_HASH_MAX_WAIT_SECONDS": "10",
        },
        "auth": {"DATABASE_URL": pg_database("overload_auth", REPO / "services/auth/migrations")},
    }
    with ExitStack() as stack:
        for name, env in backends.items():
            port = int(urls[name].rpartition(":")[2])
            env = {**common, **env, "REDIS_KEY_PREFIX": f"test:{run}:{name}:"}
            stack.enter_context(spawn_service(f"pinstack_{name}.main:create_app", env, port=port, log_dir=logs))

        def gateway(**settings: str) -> str:
            env = {
                **common,
                "JWKS_URL": f"{urls['auth']}/.well-known/jwks.json",
                "REDIS_KEY_PREFIX": f"test:{run}:gateway:{uuid.uuid4().hex[:6]}:",
                "RATE_LIMIT_AUTH_PER_MINUTE": "0",
                "RATE_LIMIT_LOGIN_FAILURES": "0",
                "TRUSTED_PROXIES": "127.0.0.1",  # each test client is its own X-Forwarded-For
                **settings,
            }
            return stack.enter_context(spawn_service("pinstack_gateway.main:create_app", env, log_dir=logs))

        yield SmallStack(users_db, gateway)


def client_address() -> dict[str, str]:
    n = next(_clients)
    return {"X-Forwarded-For": f"198.51.{100 + n // 250}.{n % 250 + 1}"}  # TEST-NET-2


def registration() -> dict[str, str]:
    name = f"ov{uuid.uuid4().hex[:12]}"
    return {"username": name, "email": f"{name}@example.com", "password": PASSWORD}


def accounts(database: str, names: list[str]) -> set[str]:
    with psycopg.connect(database) as conn:
        rows = conn.execute("SELECT username FROM users WHERE username = ANY(%s)", (names,)).fetchall()
    return {row[0] for row in rows}


@dataclass
class Timed:
    response: httpx.Response
    seconds: float


async def timed(client: httpx.AsyncClient, path: str, body: dict[str, str], headers: dict[str, str]) -> Timed:
    started = time.perf_counter()
    response = await client.post(path, json=body, headers=headers)
    return Timed(response, time.perf_counter() - started)


def assert_shed(answer: Timed) -> None:
    """An immediate refusal in the envelope, with `Retry-After` (a loaded 2-core machine: 2 s)."""
    assert answer.response.status_code == 503, answer.response.text
    assert answer.response.json() == {"status": 503, "message": "external service unavailable"}
    assert answer.response.headers["Retry-After"] == "1"
    assert answer.seconds < 2.0, answer.seconds


@pytest.fixture(scope="module")
def gateway(small: SmallStack) -> str:
    return small.gateway(AUTH_IN_FLIGHT_PER_CLIENT="2")


class TestBurstPastCapacity:
    async def test_registrations_and_logins_are_served_or_shed_at_once(self, small: SmallStack, gateway: str) -> None:
        async with httpx.AsyncClient(base_url=f"{gateway}/api/v1", timeout=30) as client:
            anchor = registration()
            assert (await client.post("/auth/register", json=anchor)).status_code == 201
            anchor_id = (await client.get(f"/users/username/{anchor['username']}")).json()["data"]["id"]

            async def reads() -> list[int]:
                return [(await client.get(f"/users/{anchor_id}")).status_code for _ in range(10)]

            bodies = [registration() for _ in range(40)]
            reading = asyncio.create_task(reads())
            registered = await asyncio.gather(
                *(timed(client, "/auth/register", body, client_address()) for body in bodies)
            )
            read_statuses = await reading
            assert read_statuses == [200] * 10  # the service's other routes answer meanwhile

            created = [b["username"] for b, a in zip(bodies, registered, strict=True) if a.response.status_code == 201]
            for answer in registered:
                if answer.response.status_code != 201:
                    assert_shed(answer)
            assert 4 <= len(created) < 40  # one hashing and three waiting, at least
            assert accounts(small.users_database, [b["username"] for b in bodies]) == set(created)

            logins = [{"login": created[i % len(created)], "password": PASSWORD} for i in range(40)]
            logged_in = await asyncio.gather(*(timed(client, "/auth/login", b, client_address()) for b in logins))
            assert sum(a.response.status_code == 200 for a in logged_in) >= 4
            for answer in logged_in:
                if answer.response.status_code != 200:
                    assert_shed(answer)

            # Shedding opened no breaker: the next registration and login go straight through.
            again = registration()
            assert (await client.post("/auth/register", json=again)).status_code == 201
            login = {"login": again["username"], "password": PASSWORD}
            assert (await client.post("/auth/login", json=login)).status_code == 200

    async def test_one_clients_burst_leaves_room_for_others(self, gateway: str) -> None:
        me, you = client_address(), client_address()
        async with httpx.AsyncClient(base_url=f"{gateway}/api/v1", timeout=30) as client:
            mine = [timed(client, "/auth/register", registration(), me) for _ in range(20)]
            *my_answers, yours = await asyncio.gather(*mine, timed(client, "/auth/register", registration(), you))
        assert yours.response.status_code == 201, yours.response.text
        statuses = sorted(a.response.status_code for a in my_answers)
        assert statuses.count(201) <= 2 + 2  # at most two in flight at a time
        refused = [a for a in my_answers if a.response.status_code == 429]
        assert refused, statuses
        for answer in refused:
            assert answer.response.json() == {"status": 429, "message": "too many requests"}
            assert answer.response.headers["Retry-After"] == "1"


class TestDeadline:
    async def test_a_timeout_at_the_gateway_hides_no_account(self, small: SmallStack) -> None:
        """A budget shorter than the queue behind it: some answers are 504, and none of those
        left an account (the users service stopped before committing)."""
        hurried = small.gateway(UPSTREAM_TIMEOUT_SECONDS="0.05")
        # 50 ms: less than a registration's hashing, so the users service meets its deadline
        # (passed on CI's machine with 0.15 s, where shedding left every admitted one in time).
        # Up to three bursts, each checked in full, and at least one 504 among them.
        seen: list[int] = []
        for _ in range(3):
            bodies = [registration() for _ in range(16)]
            async with httpx.AsyncClient(base_url=f"{hurried}/api/v1", timeout=30) as client:
                answers = await asyncio.gather(*(timed(client, "/auth/register", b, client_address()) for b in bodies))
            statuses = [a.response.status_code for a in answers]
            seen += statuses
            assert set(statuses) <= {201, 503, 504}, statuses
            for answer in answers:
                if answer.response.status_code == 504:
                    assert answer.response.json() == {"status": 504, "message": "external service timeout"}
                    assert answer.seconds < 1.0  # within the budget, not after it
            await asyncio.sleep(1.0)  # anything still running behind a 504 would have committed by now
            created = {b["username"] for b, s in zip(bodies, statuses, strict=True) if s == 201}
            assert accounts(small.users_database, [b["username"] for b in bodies]) == created
            if 504 in statuses:
                break
        assert 504 in seen, seen
