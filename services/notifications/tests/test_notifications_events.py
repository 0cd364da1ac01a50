"""The notifications consumer against the real Kafka: follow notifications exactly once, the
recipients projection, and the cascade of deleted users."""

import asyncio
import uuid

import httpx
import orjson
import pytest
from notifications_support import Seed, new_id, produce
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_contracts.events import Event
from pinstack_notifications.config import Settings
from pinstack_notifications.main import create_app
from pinstack_notifications.notifications.service import NotificationService
from pinstack_notifications.worker import consumers
from pinstack_testing import Start, app_client, eventually, free_port, kafka_reader, sql_statements, start_consumers

pytestmark = pytest.mark.integration


def follow_record(kind: str, follower: int, followee: int, event_id: str | None = None) -> tuple[bytes, bytes, dict]:  # type: ignore[type-arg]
    """A relation event exactly as the relations relay publishes it."""
    value = orjson.dumps(
        {"followee_id": followee, "follower_id": follower, "timestamptz": "2025-08-17T12:00:00.123456Z"}
    )
    headers = {
        "event_id": event_id or uuid.uuid4().hex,
        "event_type": kind,
        "created_at": "2025-08-17 12:00:00.123456 +0000 UTC",
    }
    return str(follower).encode(), value, headers


def user_record(kind: str, data: dict[str, object]) -> tuple[bytes, bytes, dict[str, str]]:
    event = Event(type=kind, aggregate_id=str(data["id"]), data=data)
    return event.aggregate_id.encode(), event.model_dump_json().encode(), event.headers()


async def stored(engine: AsyncEngine, user_id: int) -> list:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT type, payload, is_read FROM notifications WHERE user_id = :u ORDER BY id"), {"u": user_id}
        )
        return list(result.all())


class TestNotifyingLocksBothUsers:
    async def test_known_users_cost_one_statement_and_a_deletion_in_flight_is_waited_for(
        self, settings: Settings, engine: AsyncEngine, seed: Seed
    ) -> None:
        """Both users are checked, locked and the notification inserted in one round trip; a
        notification that arrives while the actor's tombstone is uncommitted waits for it, then
        sees it (the interleaving the lock is for)."""
        actor, recipient = await seed(2)
        app = create_app(settings)
        async with app_client(app):
            sessions = app.state.sessionmaker
            async with sessions() as session:
                with sql_statements(app.state.engine) as seen:
                    await NotificationService(session).notify_activity(recipient, actor, "like_created", {"n": 1})
                await session.commit()
            assert [s.split(None, 1)[0] for s in seen] == ["WITH"], seen
            async with engine.connect() as deleting, sessions() as session:
                await deleting.execute(text("UPDATE users SET deleted_at = now() WHERE id = :u"), {"u": actor})
                late = asyncio.create_task(
                    NotificationService(session).notify_activity(recipient, actor, "like_created", {"n": 2})
                )
                await asyncio.sleep(0.3)
                assert not late.done()  # waiting on the actor's row, not deciding on a stale snapshot
                await deleting.commit()
                await late
                await session.commit()
        assert [row.payload for row in await stored(engine, recipient)] == [{"n": 1}]


class TestRelationEvents:
    async def test_a_follow_notifies_the_followee_once_even_when_redelivered(
        self, engine: AsyncEngine, settings: Settings, start: Start, seed: Seed
    ) -> None:
        follower, followee = await seed(2)
        record = follow_record("follow_created", follower, followee)
        unfollow = follow_record("follow_deleted", follower, followee)
        # the same record twice (a relay crash before marking it sent), then an unfollow that
        # shares the follower's partition: once it is handled, the duplicate was handled too
        sentinel = follow_record("follow_created", follower, new_id())
        await produce(settings.topic("relation-events"), [record, record, unfollow, sentinel])
        start_consumers(start, consumers(settings), engine)
        await eventually(lambda: stored(engine, int(orjson.loads(sentinel[1])["followee_id"])), timeout=20)

        [notification] = await stored(engine, followee)
        assert notification.type == "follow_created"
        assert notification.payload == orjson.loads(record[1])  # the message value, as sent
        assert notification.is_read is False

    async def test_a_follow_of_a_deleted_user_notifies_nobody(
        self, engine: AsyncEngine, settings: Settings, start: Start, seed: Seed
    ) -> None:
        follower, gone = await seed(2)
        await produce(
            settings.topic("user-events"),
            [user_record("user_deleted", {"id": gone})],
        )
        late = follow_record("follow_created", follower, gone)
        sentinel = follow_record("follow_created", follower, new_id())
        await produce(settings.topic("relation-events"), [late, sentinel])
        start_consumers(start, consumers(settings), engine)
        await eventually(lambda: stored(engine, int(orjson.loads(sentinel[1])["followee_id"])), timeout=20)

        async def tombstoned() -> bool:
            async with engine.connect() as conn:
                return bool(await conn.scalar(text("SELECT deleted_at FROM users WHERE id = :u"), {"u": gone}))

        await eventually(tombstoned, timeout=20)
        # the deletion and the follow may arrive in either order: neither leaves a notification
        assert await stored(engine, gone) == []

    async def test_a_malformed_record_is_dead_lettered_and_does_not_block_the_partition(
        self, engine: AsyncEngine, settings: Settings, start: Start, seed: Seed
    ) -> None:
        follower, followee = await seed(2)
        key, _, headers = follow_record("follow_created", follower, followee)
        poison = (key, b"{not json", headers)
        sentinel = follow_record("follow_created", follower, followee)  # same key, after the poison
        await produce(settings.topic("relation-events"), [poison, sentinel])
        start_consumers(start, consumers(settings), engine)
        await eventually(lambda: stored(engine, followee), timeout=30)

        async with kafka_reader(settings.topic("notifications.dlt")) as dead:
            parked = await asyncio.wait_for(dead.getone(), 20)
        assert parked.value == b"{not json"
        assert dict(parked.headers)["source_topic"] == settings.topic("relation-events").encode()
        assert len(await stored(engine, followee)) == 1


class TestUserEvents:
    async def test_a_deleted_user_loses_every_notification_and_receives_no_more(
        self, client: httpx.AsyncClient, engine: AsyncEngine, settings: Settings, start: Start, seed: Seed
    ) -> None:
        gone, other = await seed(2)
        for user in (gone, gone, other):
            response = await client.post("/notifications", json={"user_id": user, "type": "system"})
            assert response.status_code == 200
        await produce(settings.topic("user-events"), [user_record("user_deleted", {"id": gone})])
        start_consumers(start, consumers(settings), engine)

        async def cascaded() -> bool:
            return await stored(engine, gone) == []

        await eventually(cascaded, timeout=20)
        assert len(await stored(engine, other)) == 1
        refused = await client.post("/notifications", json={"user_id": gone, "type": "system"})
        assert refused.json() == {"status": 404, "message": "user not found"}

    async def test_created_users_can_receive_without_asking_the_users_service(
        self, engine: AsyncEngine, settings: Settings, start: Start
    ) -> None:
        user = new_id()
        rest = {"email": "f@example.com", "created_at": "2025-01-01T00:00:00Z", "updated_at": "2025-01-01T00:00:00Z"}
        await produce(
            settings.topic("user-events"),
            [
                user_record("user_created", {"id": user, "username": "fresh", **rest}),
                user_record("user_updated", {"id": user, "username": "fresher", **rest}),
            ],
        )
        start_consumers(start, consumers(settings), engine)

        async def known() -> bool:
            async with engine.connect() as conn:
                return bool(await conn.scalar(text("SELECT count(*) FROM users WHERE id = :u"), {"u": user}))

        await eventually(known, timeout=20)
        offline = settings.model_copy(update={"users_url": f"http://127.0.0.1:{free_port()}"})
        async with app_client(create_app(offline)) as client:
            response = await client.post("/notifications", json={"user_id": user, "type": "system"})
        assert response.status_code == 200
