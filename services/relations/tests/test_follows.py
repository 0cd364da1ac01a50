"""The relations API on the real PostgreSQL (and a real users server for the fallback)."""

import asyncio
import re
import uuid
from datetime import datetime

import httpx
import orjson
import pytest
from fastapi import FastAPI
from relations_support import Seed, new_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_relations.config import Settings
from pinstack_relations.main import create_app
from pinstack_testing import app_client, free_port, sql_statements

pytestmark = pytest.mark.integration

GO_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{1,6})? \+0000 UTC")
RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z")


async def follow(client: httpx.AsyncClient, follower_id: int, followee_id: int) -> httpx.Response:
    return await client.post("/follows", json={"follower_id": follower_id, "followee_id": followee_id})


async def unfollow(client: httpx.AsyncClient, follower_id: int, followee_id: int) -> httpx.Response:
    return await client.delete("/follows", params={"follower_id": follower_id, "followee_id": followee_id})


async def outbox(engine: AsyncEngine, settings: Settings) -> list:  # type: ignore[type-arg]
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT topic, key, value, headers FROM outbox WHERE topic = :t ORDER BY id"),
            {"t": settings.topic("relation-events")},
        )
        return list(result.all())


async def create_real_user(users_url: str, **extra: str) -> dict:  # type: ignore[type-arg]
    name = f"r{uuid.uuid4().hex[:12]}"
    body = {"username": name, "email": f"{name}@example.com", "password": "correct horse", **extra}
    async with httpx.AsyncClient(base_url=users_url) as users:
        response = await users.post("/users", json=body)
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


class TestFollow:
    async def test_follows_and_enqueues_follow_created_in_the_upstream_shape(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        follower, followee = await seed(2)
        response = await follow(client, follower, followee)
        assert response.status_code == 200, response.text
        created = response.json()["data"]
        assert created["follower_id"] == follower and created["followee_id"] == followee

        [row] = await outbox(engine, settings)
        assert row.topic == settings.topic("relation-events")
        assert row.key == str(follower)  # keyed by the aggregate, not by the event type
        value = bytes(row.value)
        assert value == orjson.dumps(
            {"followee_id": followee, "follower_id": follower, "timestamptz": created["created_at"]}
        )
        assert RFC3339_NANO.fullmatch(created["created_at"])
        assert set(row.headers) == {"event_id", "event_type", "created_at"}
        assert row.headers["event_type"] == "follow_created"
        assert re.fullmatch(r"[0-9a-f]{32}", row.headers["event_id"])
        assert GO_TIME.fullmatch(row.headers["created_at"])
        # the header and the value name the same instant
        at = datetime.fromisoformat(created["created_at"].replace("Z", "+00:00"))
        assert row.headers["created_at"].startswith(at.strftime("%Y-%m-%d %H:%M:%S"))

    async def test_a_follow_of_known_users_checks_and_inserts_in_one_statement(
        self, app: FastAPI, client: httpx.AsyncClient, seed: Seed
    ) -> None:
        """Both ends locked and the follow inserted in one round trip; then only the outbox row."""
        follower, followee = await seed(2)
        with sql_statements(app.state.engine) as seen:
            assert (await follow(client, follower, followee)).status_code == 200
        assert [s.split(None, 1)[0] for s in seen] == ["WITH", "INSERT"], seen
        with sql_statements(app.state.engine) as seen:
            assert (await follow(client, follower, followee)).json() == {
                "status": 409,
                "message": "already following this user",
            }
        assert [s.split(None, 1)[0] for s in seen] == ["WITH"], seen

    async def test_following_yourself_is_refused_without_an_event(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        [me] = await seed()
        response = await follow(client, me, me)
        assert response.json() == {"status": 400, "message": "cannot follow yourself"}
        assert await outbox(engine, settings) == []

    async def test_an_unknown_followee_is_not_found(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [me] = await seed()
        response = await follow(client, me, new_id())  # neither in the projection nor in users
        assert response.json() == {"status": 404, "message": "user not found"}

    async def test_a_deleted_follower_cannot_follow(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine
    ) -> None:
        follower, followee = await seed(2)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE users SET deleted_at = now() WHERE id = :id"), {"id": follower})
        response = await follow(client, follower, followee)
        assert response.json() == {"status": 404, "message": "user not found"}

    async def test_a_follow_waits_for_a_deletion_in_flight_and_then_refuses(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        """The interleaving the lock is for: the follower's tombstone is written but not committed
        when the follow arrives. The follow waits for it, then sees it (no follow, no event)."""
        follower, followee = await seed(2)
        async with engine.connect() as deleting:
            await deleting.execute(text("UPDATE users SET deleted_at = now() WHERE id = :id"), {"id": follower})
            answer = asyncio.create_task(follow(client, follower, followee))
            await asyncio.sleep(0.3)
            assert not answer.done()  # waiting on the row, not deciding on a stale snapshot
            await deleting.commit()
        assert (await answer).json() == {"status": 404, "message": "user not found"}
        assert await outbox(engine, settings) == []

    async def test_following_twice_conflicts_and_emits_once(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        follower, followee = await seed(2)
        assert (await follow(client, follower, followee)).status_code == 200
        again = await follow(client, follower, followee)
        assert again.json() == {"status": 409, "message": "already following this user"}
        assert len(await outbox(engine, settings)) == 1

    async def test_concurrent_duplicates_make_one_follow(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        follower, followee = await seed(2)
        answers = await asyncio.gather(*(follow(client, follower, followee) for _ in range(5)))
        assert sorted(a.status_code for a in answers) == [200, 409, 409, 409, 409]
        assert len(await outbox(engine, settings)) == 1

    async def test_a_fresh_registration_is_looked_up_in_the_users_service_and_remembered(
        self, client: httpx.AsyncClient, seed: Seed, users_url: str, settings: Settings
    ) -> None:
        [follower] = await seed()
        user = await create_real_user(users_url, avatar_url="https://cdn.example.com/a.png")
        assert (await follow(client, follower, user["id"])).status_code == 200
        # Remembered: answers keep working with the users service out of reach.
        offline = settings.model_copy(update={"users_url": f"http://127.0.0.1:{free_port()}"})
        async with app_client(create_app(offline)) as cut_off:
            page = (await cut_off.get(f"/users/{follower}/followees")).json()["data"]
        assert page["followees"] == [
            {"id": user["id"], "username": user["username"], "avatar_url": "https://cdn.example.com/a.png"}
        ]

    async def test_an_unreachable_users_service_is_a_503_not_a_404(self, seed: Seed, settings: Settings) -> None:
        [me] = await seed()
        offline = settings.model_copy(update={"users_url": f"http://127.0.0.1:{free_port()}"})
        async with app_client(create_app(offline)) as client:
            response = await follow(client, me, new_id())
        assert response.json() == {"status": 503, "message": "external service unavailable"}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"follower_id": 0, "followee_id": 1}, "validation failed"),
            ({"follower_id": 1, "followee_id": -5}, "validation failed"),
            ({"follower_id": 1}, "validation failed"),
            ({"follower_id": "1", "followee_id": 2}, "invalid input"),
            ({"follower_id": 1.5, "followee_id": 2}, "invalid input"),
        ],
    )
    async def test_bad_bodies_are_400(self, client: httpx.AsyncClient, body: dict, message: str) -> None:  # type: ignore[type-arg]
        response = await client.post("/follows", json=body)
        assert response.json() == {"status": 400, "message": message}


class TestUnfollow:
    async def test_unfollows_and_enqueues_follow_deleted(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        follower, followee = await seed(2)
        await follow(client, follower, followee)
        response = await unfollow(client, follower, followee)
        assert response.json() == {"status": 200}
        created, deleted = await outbox(engine, settings)
        assert deleted.key == str(follower)
        assert deleted.headers["event_type"] == "follow_deleted"
        assert deleted.headers["event_id"] != created.headers["event_id"]
        assert GO_TIME.fullmatch(deleted.headers["created_at"])
        value = orjson.loads(bytes(deleted.value))
        assert list(value) == ["followee_id", "follower_id", "timestamptz"]
        assert (value["followee_id"], value["follower_id"]) == (followee, follower)
        assert RFC3339_NANO.fullmatch(value["timestamptz"])
        # the pair is gone: it can be unfollowed no more, and followed again
        again = await unfollow(client, follower, followee)
        assert again.json() == {"status": 404, "message": "follow relation not found"}
        assert (await follow(client, follower, followee)).status_code == 200

    async def test_unfollowing_yourself_is_refused(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [me] = await seed()
        response = await unfollow(client, me, me)
        assert response.json() == {"status": 400, "message": "cannot unfollow yourself"}

    async def test_a_missing_relation_is_not_found_without_an_event(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine, settings: Settings
    ) -> None:
        a, b = await seed(2)
        response = await unfollow(client, a, b)
        assert response.json() == {"status": 404, "message": "follow relation not found"}
        assert await outbox(engine, settings) == []

    async def test_bad_queries_are_400(self, client: httpx.AsyncClient) -> None:
        missing = await client.delete("/follows", params={"follower_id": 1})
        assert missing.json() == {"status": 400, "message": "validation failed"}
        garbage = await client.delete("/follows", params={"follower_id": "x", "followee_id": 2})
        assert garbage.json() == {"status": 400, "message": "invalid input"}


class TestLists:
    async def test_cursor_pages_cover_every_follow_once_while_more_arrive(
        self, client: httpx.AsyncClient, seed: Seed
    ) -> None:
        [star] = await seed()
        fans, late = await seed(5), await seed(2)
        for fan in fans:
            assert (await follow(client, fan, star)).status_code == 200
        first = await client.get(f"/users/{star}/followers", params={"limit": 2})
        assert set(first.json()["data"]) == {"followers", "total", "page", "limit"}  # upstream's shape
        seen = [u["id"] for u in first.json()["data"]["followers"]]
        cursor = first.headers["X-Next-Cursor"]
        for newcomer in late:  # newer follows land at the head, before the cursor
            assert (await follow(client, newcomer, star)).status_code == 200
            data = (await client.get(f"/users/{star}/followers", params={"limit": 2, "cursor": cursor})).json()["data"]
            seen += [u["id"] for u in data["followers"]]
            cursor = data["next_cursor"]
        assert cursor is None and seen == fans[::-1]
        assert data["total"] == 7

    @pytest.mark.parametrize("cursor", ["%%%", "MQ", "LTE6Mg"])
    async def test_a_bad_cursor_is_validation_failed(self, client: httpx.AsyncClient, seed: Seed, cursor: str) -> None:
        [user] = await seed()
        response = await client.get(f"/users/{user}/followees", params={"cursor": cursor})
        assert response.json() == {"status": 400, "message": "validation failed"}

    async def test_followers_and_followees_newest_first_with_totals(
        self, client: httpx.AsyncClient, seed: Seed
    ) -> None:
        [star] = await seed(avatar_url="https://cdn.example.com/star.png")
        fans = await seed(5)
        for fan in fans:
            assert (await follow(client, fan, star)).status_code == 200
        first = (await client.get(f"/users/{star}/followers", params={"page": 1, "limit": 2})).json()
        assert first["status"] == 200
        data = first["data"]
        assert (data["total"], data["page"], data["limit"]) == (5, 1, 2)
        assert data["followers"] == [{"id": i, "username": f"user{i}"} for i in reversed(fans[-2:])]
        last = (await client.get(f"/users/{star}/followers", params={"page": 3, "limit": 2})).json()["data"]
        assert [u["id"] for u in last["followers"]] == [fans[0]]
        beyond = (await client.get(f"/users/{star}/followers", params={"page": 9, "limit": 2})).json()["data"]
        assert beyond == {"followers": [], "total": 5, "page": 9, "limit": 2}

        fan_view = (await client.get(f"/users/{fans[0]}/followees")).json()["data"]
        assert fan_view == {
            "followees": [{"id": star, "username": f"user{star}", "avatar_url": "https://cdn.example.com/star.png"}],
            "total": 1,
            "page": 1,
            "limit": 20,
        }

    async def test_a_user_without_relations_has_empty_lists(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [loner] = await seed()
        for kind in ("followers", "followees"):
            data = (await client.get(f"/users/{loner}/{kind}")).json()["data"]
            assert data == {kind: [], "total": 0, "page": 1, "limit": 20}

    async def test_a_fresh_registration_has_empty_lists(self, client: httpx.AsyncClient, users_url: str) -> None:
        user = await create_real_user(users_url)
        data = (await client.get(f"/users/{user['id']}/followers")).json()
        assert data == {"status": 200, "data": {"followers": [], "total": 0, "page": 1, "limit": 20}}

    async def test_an_unknown_user_is_not_found(self, client: httpx.AsyncClient) -> None:
        for kind in ("followers", "followees"):
            response = await client.get(f"/users/{new_id()}/{kind}")
            assert response.json() == {"status": 404, "message": "user not found"}

    async def test_a_user_missing_from_the_projection_is_named_missing_user(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine
    ) -> None:
        star, fan = await seed(2)
        await follow(client, fan, star)
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE id = :id"), {"id": fan})
        data = (await client.get(f"/users/{star}/followers")).json()["data"]
        assert data["followers"] == [{"id": fan, "username": "Missing user"}]

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"limit": 0}, "validation failed"),
            ({"limit": 101}, "validation failed"),
            ({"page": 0}, "validation failed"),
            ({"page": -1}, "validation failed"),
            ({"limit": "ten"}, "invalid input"),
        ],
    )
    async def test_bad_pagination_is_400(
        self,
        client: httpx.AsyncClient,
        seed: Seed,
        params: dict,  # type: ignore[type-arg]
        message: str,
    ) -> None:
        [user] = await seed()
        response = await client.get(f"/users/{user}/followers", params=params)
        assert response.json() == {"status": 400, "message": message}

    async def test_bad_user_ids_are_400(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/users/0/followers")).json() == {"status": 400, "message": "validation failed"}
        assert (await client.get("/users/abc/followees")).json() == {"status": 400, "message": "invalid input"}
