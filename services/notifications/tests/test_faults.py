"""Fault tests on real processes: Kafka stopped while people follow each other, and the
notifications worker killed mid-stream. Nothing may be lost and nothing applied twice.

Everything runs on a private stack (its own PostgreSQL, Redis and Kafka from scripts/stack.py),
so stopping Kafka here does not disturb other tests running in parallel.
"""

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

from pinstack_testing import eventually, spawn_service, spawn_worker
from pinstack_testing.stack import PrivateStack

pytestmark = pytest.mark.fault

SERVICES = Path(__file__).resolve().parents[2]


@dataclass
class Platform:
    stack: PrivateStack
    users_url: str
    relations_url: str
    notifications_db: str
    worker_env: dict[str, str]


@pytest.fixture(scope="module")
def platform(private_stack: PrivateStack) -> Iterator[Platform]:
    """users and relations servers, the relations relay; notifications workers are per test."""
    common = {
        "ENVIRONMENT": "test",
        "REDIS_URL": private_stack.redis_url,
        "KAFKA_BOOTSTRAP_SERVERS": private_stack.kafka,
    }
    dbs = {
        name: private_stack.database(f"fault_{name}", SERVICES / name / "migrations")
        for name in ("users", "relations", "notifications")
    }
    users_env = {**common, "DATABASE_URL": dbs["users"], "REDIS_KEY_PREFIX": "fault:users:"}
    with spawn_service("pinstack_users.main:create_app", users_env) as users_url:
        relations_env = {**common, "DATABASE_URL": dbs["relations"], "USERS_URL": users_url}
        with (
            spawn_service("pinstack_relations.main:create_app", relations_env) as relations_url,
            spawn_worker("pinstack_relations.worker", relations_env),
        ):
            worker_env = {**common, "DATABASE_URL": dbs["notifications"], "USERS_URL": users_url}
            yield Platform(private_stack, users_url, relations_url, dbs["notifications"], worker_env)


def create_users(platform: Platform, count: int) -> list[int]:
    ids = []
    with httpx.Client(base_url=platform.users_url, timeout=10) as client:
        for _ in range(count):
            name = f"f{uuid.uuid4().hex[:12]}"
            body = {"username": name, "email": f"{name}@example.com", "password": "fault-tolerant"}
            response = client.post("/users", json=body)
            response.raise_for_status()
            ids.append(response.json()["data"]["id"])
    return ids


def follow_all(platform: Platform, ids: list[int]) -> int:
    """Every user follows every other one; returns how many follows were accepted."""
    accepted = 0
    with httpx.Client(base_url=platform.relations_url, timeout=10) as client:
        for follower in ids:
            for followee in ids:
                if follower != followee:
                    response = client.post("/follows", json={"follower_id": follower, "followee_id": followee})
                    assert response.status_code == 200, response.text
                    accepted += 1
    return accepted


def notification_counts(platform: Platform, ids: list[int]) -> tuple[int, int]:
    """(notifications, distinct follows they describe) for the given recipients."""
    with psycopg.connect(platform.notifications_db.replace("+psycopg", "")) as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT (user_id, payload->>'follower_id')) FROM notifications"
            " WHERE type = 'follow_created' AND user_id = ANY(%s)",
            (ids,),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def settled(platform: Platform, ids: list[int], expected: int, timeout: float = 90.0) -> tuple[int, int]:
    await eventually(lambda: notification_counts(platform, ids)[0] >= expected, timeout=timeout, interval=0.5)
    await asyncio.sleep(3.0)  # a redelivery arriving late would show up as a surplus now
    return notification_counts(platform, ids)


class TestKafkaOutage:
    async def test_follows_made_while_kafka_is_down_notify_exactly_once_after_it_returns(
        self, platform: Platform
    ) -> None:
        ids = create_users(platform, 6)
        with spawn_worker("pinstack_notifications.worker", platform.worker_env):
            platform.stack.stop("kafka")
            try:
                accepted = follow_all(platform, ids)  # writes succeed: events wait in the outbox
            finally:
                platform.stack.up()
            assert accepted == 30
            assert await settled(platform, ids, accepted) == (accepted, accepted)


class TestWorkerCrash:
    async def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(self, platform: Platform) -> None:
        ids = create_users(platform, 9)
        accepted: list[int] = []
        follower = threading.Thread(target=lambda: accepted.append(follow_all(platform, ids)))
        with spawn_worker("pinstack_notifications.worker", platform.worker_env) as first:
            follower.start()
            await eventually(lambda: notification_counts(platform, ids)[0] >= 10, timeout=60, interval=0.05)
            first.kill()  # SIGKILL: no graceful shutdown, offsets of the current batch not committed
            first.wait(10)
        with spawn_worker("pinstack_notifications.worker", platform.worker_env):
            follower.join(timeout=120)
            assert accepted == [72]
            assert await settled(platform, ids, 72) == (72, 72)
