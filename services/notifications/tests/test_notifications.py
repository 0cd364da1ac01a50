"""The notifications API on the real PostgreSQL (and a real users server for the fallback)."""

import asyncio
import re
import uuid
from typing import Any

import httpx
import pytest
from notifications_support import Seed, new_id
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_notifications.config import Settings
from pinstack_notifications.main import create_app
from pinstack_testing import app_client, free_port

pytestmark = pytest.mark.integration

RFC3339_NANO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z")


async def send(client: httpx.AsyncClient, user_id: int, kind: str = "system", **extra: Any) -> int:
    response = await client.post("/notifications", json={"user_id": user_id, "type": kind, **extra})
    assert response.status_code == 200, response.text
    return int(response.json()["data"]["notification_id"])


async def feed(client: httpx.AsyncClient, user_id: int, **params: int) -> dict:  # type: ignore[type-arg]
    response = await client.get(f"/users/{user_id}/notifications", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


async def unread(client: httpx.AsyncClient, user_id: int) -> int:
    return int((await client.get(f"/users/{user_id}/notifications/unread-count")).json()["data"]["count"])


class TestSend:
    async def test_stores_an_unread_notification_for_the_recipient(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [user] = await seed()
        nid = await send(client, user, "like", payload={"post_id": 7, "by": "ada"})
        one = (await client.get(f"/notifications/{nid}", params={"user_id": user})).json()
        assert one["status"] == 200
        data = one["data"]
        assert {k: v for k, v in data.items() if k != "created_at"} == {
            "id": nid,
            "user_id": user,
            "type": "like",
            "is_read": False,
            "payload": {"post_id": 7, "by": "ada"},
        }
        assert RFC3339_NANO.fullmatch(data["created_at"])

    @pytest.mark.parametrize("payload", [[1, 2, 3], "just text", 42, True, {"nested": {"deep": [None, 1.5]}}])
    async def test_any_json_payload_comes_back_as_sent(
        self, client: httpx.AsyncClient, seed: Seed, payload: object
    ) -> None:
        [user] = await seed()
        nid = await send(client, user, payload=payload)
        data = (await client.get(f"/notifications/{nid}", params={"user_id": user})).json()["data"]
        assert data["payload"] == payload

    async def test_payload_is_embedded_compact_and_omitted_when_absent(
        self, client: httpx.AsyncClient, seed: Seed
    ) -> None:
        [user] = await seed()
        with_payload = await send(client, user, payload={"a": 1, "b": [1, 2]})
        without = await send(client, user)
        null_payload = await send(client, user, payload=None)
        raw = (await client.get(f"/notifications/{with_payload}", params={"user_id": user})).content
        assert b'"payload":{"a":1,"b":[1,2]}' in raw
        for nid in (without, null_payload):
            data = (await client.get(f"/notifications/{nid}", params={"user_id": user})).json()["data"]
            assert "payload" not in data

    async def test_an_unknown_recipient_is_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/notifications", json={"user_id": new_id(), "type": "system"})
        assert response.json() == {"status": 404, "message": "user not found"}

    async def test_a_deleted_recipient_is_not_found(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine
    ) -> None:
        [user] = await seed()
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE users SET deleted_at = now() WHERE id = :id"), {"id": user})
        response = await client.post("/notifications", json={"user_id": user, "type": "system"})
        assert response.json() == {"status": 404, "message": "user not found"}

    async def test_a_deleted_sender_sends_nothing(
        self, client: httpx.AsyncClient, seed: Seed, engine: AsyncEngine
    ) -> None:
        """A send that was on its way when its sender's account went (the gateway had checked the
        token just before) arrives after `user_deleted`: refused as that token is, nothing stored."""
        sender, recipient = await seed(2)
        await send(client, recipient, sender_id=sender)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE users SET deleted_at = now() WHERE id = :id"), {"id": sender})
        response = await client.post(
            "/notifications", json={"user_id": recipient, "type": "system", "sender_id": sender}
        )
        assert response.json() == {"status": 401, "message": "unauthenticated"}
        assert (await feed(client, recipient))["total"] == 1

    async def test_a_fresh_registration_is_looked_up_in_the_users_service_and_remembered(
        self, client: httpx.AsyncClient, users_url: str, settings: Settings
    ) -> None:
        name = f"n{uuid.uuid4().hex[:12]}"
        async with httpx.AsyncClient(base_url=users_url) as users:
            created = await users.post(
                "/users", json={"username": name, "email": f"{name}@example.com", "password": "correct horse"}
            )
        user_id = created.json()["data"]["id"]
        await send(client, user_id)
        offline = settings.model_copy(update={"users_url": f"http://127.0.0.1:{free_port()}"})
        async with app_client(create_app(offline)) as cut_off:
            await send(cut_off, user_id)
        assert (await feed(client, user_id))["total"] == 2

    async def test_an_unreachable_users_service_is_a_503(self, settings: Settings) -> None:
        offline = settings.model_copy(update={"users_url": f"http://127.0.0.1:{free_port()}"})
        async with app_client(create_app(offline)) as client:
            response = await client.post("/notifications", json={"user_id": new_id(), "type": "system"})
        assert response.json() == {"status": 503, "message": "external service unavailable"}

    @pytest.mark.parametrize(
        ("body", "message"),
        [
            ({"user_id": 0, "type": "system"}, "validation failed"),
            ({"user_id": 1, "type": ""}, "validation failed"),
            ({"user_id": 1, "type": "x" * 65}, "validation failed"),
            ({"user_id": 1}, "validation failed"),
            ({"user_id": "1", "type": "system"}, "invalid input"),
            ({"user_id": 1, "type": 5}, "invalid input"),
        ],
    )
    async def test_bad_bodies_are_400(self, client: httpx.AsyncClient, body: dict, message: str) -> None:  # type: ignore[type-arg]
        response = await client.post("/notifications", json=body)
        assert response.json() == {"status": 400, "message": message}

    async def test_a_64_character_type_is_accepted(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [user] = await seed()
        await send(client, user, "é" * 64)


class TestFeed:
    async def test_cursor_pages_cover_every_notification_once_while_more_arrive(
        self, client: httpx.AsyncClient, seed: Seed
    ) -> None:
        [user] = await seed()
        ids = [await send(client, user) for _ in range(5)]
        first = await client.get(f"/users/{user}/notifications", params={"limit": 2})
        assert "next_cursor" not in first.json()["data"]  # upstream's shape without a cursor
        seen = [n["id"] for n in first.json()["data"]["notifications"]]
        cursor: str | None = first.headers["X-Next-Cursor"]
        while cursor:
            await send(client, user)  # newer: at the head, before the cursor
            response = await client.get(f"/users/{user}/notifications", params={"limit": 2, "cursor": cursor})
            seen += [n["id"] for n in response.json()["data"]["notifications"]]
            cursor = response.json()["data"]["next_cursor"]
        assert seen == ids[::-1]

    async def test_a_bad_cursor_is_validation_failed(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [user] = await seed()
        response = await client.get(f"/users/{user}/notifications", params={"cursor": "bm9wZQ"})
        assert response.json() == {"status": 400, "message": "validation failed"}

    async def test_newest_first_with_totals_and_pages(self, client: httpx.AsyncClient, seed: Seed) -> None:
        user, other = await seed(2)
        ids = [await send(client, user, payload={"n": i}) for i in range(5)]
        await send(client, other)
        first = await feed(client, user, page=1, limit=2)
        assert [n["id"] for n in first["notifications"]] == [ids[4], ids[3]]
        assert {k: first[k] for k in ("total", "page", "limit", "total_pages")} == {
            "total": 5,
            "page": 1,
            "limit": 2,
            "total_pages": 3,
        }
        last = await feed(client, user, page=3, limit=2)
        assert [n["id"] for n in last["notifications"]] == [ids[0]]
        beyond = await feed(client, user, page=4, limit=2)
        assert beyond == {"notifications": [], "total": 5, "page": 4, "limit": 2, "total_pages": 3}
        exact = await feed(client, user, limit=5)
        assert (exact["total_pages"], exact["limit"], exact["page"]) == (1, 5, 1)

    async def test_an_empty_feed(self, client: httpx.AsyncClient) -> None:
        assert await feed(client, new_id()) == {
            "notifications": [],
            "total": 0,
            "page": 1,
            "limit": 10,
            "total_pages": 0,
        }

    @pytest.mark.parametrize(
        ("params", "message"),
        [
            ({"limit": 0}, "validation failed"),
            ({"limit": 101}, "validation failed"),
            ({"page": 0}, "validation failed"),
            ({"page": "two"}, "invalid input"),
        ],
    )
    async def test_bad_pagination_is_400(self, client: httpx.AsyncClient, params: dict, message: str) -> None:  # type: ignore[type-arg]
        response = await client.get(f"/users/{new_id()}/notifications", params=params)
        assert response.json() == {"status": 400, "message": message}


class TestUnreadAndReadAll:
    async def test_read_all_marks_only_the_users_unread(self, client: httpx.AsyncClient, seed: Seed) -> None:
        user, other = await seed(2)
        for _ in range(3):
            await send(client, user)
        await send(client, other)
        assert await unread(client, user) == 3
        response = await client.put(f"/users/{user}/notifications/read-all")
        assert response.json() == {"status": 200, "data": {"updated": 3}}
        assert await unread(client, user) == 0
        assert await unread(client, other) == 1
        assert all(n["is_read"] for n in (await feed(client, user))["notifications"])
        again = await client.put(f"/users/{user}/notifications/read-all")
        assert again.json() == {"status": 200, "data": {"updated": 0}}  # nothing left, still fine

    async def test_a_user_without_notifications_has_none_unread(self, client: httpx.AsyncClient) -> None:
        response = await client.get(f"/users/{new_id()}/notifications/unread-count")
        assert response.json() == {"status": 200, "data": {"count": 0}}


class TestOwnerOnly:
    async def test_reads_and_changes_are_for_the_owner_only(self, client: httpx.AsyncClient, seed: Seed) -> None:
        owner, intruder = await seed(2)
        nid = await send(client, owner)
        denied = {"status": 403, "message": "access to notification denied"}
        assert (await client.get(f"/notifications/{nid}", params={"user_id": intruder})).json() == denied
        assert (await client.put(f"/notifications/{nid}/read", params={"user_id": intruder})).json() == denied
        assert (await client.delete(f"/notifications/{nid}", params={"user_id": intruder})).json() == denied
        # the intruder changed nothing
        mine = (await client.get(f"/notifications/{nid}", params={"user_id": owner})).json()["data"]
        assert mine["is_read"] is False
        assert await unread(client, owner) == 1

    async def test_reading_answers_whether_it_was_already_read(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [owner] = await seed()
        nid = await send(client, owner)
        first = await client.put(f"/notifications/{nid}/read", params={"user_id": owner})
        assert first.json() == {"status": 200, "data": {"already_read": False}}
        second = await client.put(f"/notifications/{nid}/read", params={"user_id": owner})
        assert second.json() == {"status": 200, "data": {"already_read": True}}
        assert await unread(client, owner) == 0

    async def test_concurrent_reads_mark_it_once(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [owner] = await seed()
        nid = await send(client, owner)
        answers = await asyncio.gather(
            *(client.put(f"/notifications/{nid}/read", params={"user_id": owner}) for _ in range(6))
        )
        flags = sorted(a.json()["data"]["already_read"] for a in answers)
        assert flags == [False, True, True, True, True, True]

    async def test_delete_removes_it_once(self, client: httpx.AsyncClient, seed: Seed) -> None:
        [owner] = await seed()
        nid = await send(client, owner)
        answers = await asyncio.gather(
            *(client.delete(f"/notifications/{nid}", params={"user_id": owner}) for _ in range(4))
        )
        assert sorted(a.status_code for a in answers) == [200, 404, 404, 404]
        assert {a.json().get("message") for a in answers if a.status_code == 404} == {"notification not found"}
        gone = await client.get(f"/notifications/{nid}", params={"user_id": owner})
        assert gone.json() == {"status": 404, "message": "notification not found"}
        assert (await feed(client, owner))["total"] == 0

    async def test_unknown_notifications_are_not_found(self, client: httpx.AsyncClient) -> None:
        missing = {"status": 404, "message": "notification not found"}
        nid, caller = new_id(), {"user_id": 1}
        assert (await client.get(f"/notifications/{nid}", params=caller)).json() == missing
        assert (await client.put(f"/notifications/{nid}/read", params=caller)).json() == missing
        assert (await client.delete(f"/notifications/{nid}", params=caller)).json() == missing

    async def test_bad_ids_are_400(self, client: httpx.AsyncClient) -> None:
        failed = {"status": 400, "message": "validation failed"}
        assert (await client.get("/notifications/0", params={"user_id": 1})).json() == failed
        assert (await client.get("/notifications/5")).json() == failed  # the caller is required
        assert (await client.get("/notifications/5", params={"user_id": 0})).json() == failed
        invalid = await client.put("/notifications/abc/read", params={"user_id": 1})
        assert invalid.json() == {"status": 400, "message": "invalid input"}
