"""The users service on the real PostgreSQL and Redis."""

import uuid

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pinstack_users.config import Settings

pytestmark = pytest.mark.integration


def new_user(**overrides: object) -> dict[str, object]:
    name = f"u{uuid.uuid4().hex[:12]}"
    return {"username": name, "email": f"{name}@example.com", "password": "correct horse", **overrides}


async def create(client: httpx.AsyncClient, **overrides: object) -> dict:  # type: ignore[type-arg]
    response = await client.post("/users", json=new_user(**overrides))
    assert response.status_code == 201, response.text
    return response.json()["data"]  # type: ignore[no-any-return]


class TestCreate:
    async def test_returns_the_profile_without_any_password_material(self, client: httpx.AsyncClient) -> None:
        user = await create(client, full_name="Ada Lovelace")
        assert set(user) == {"id", "username", "email", "full_name", "created_at", "updated_at"}
        assert user["created_at"].endswith("Z") and len(user["created_at"]) == 20

    async def test_usernames_and_emails_are_unique_regardless_of_case(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        again = await client.post("/users", json=new_user(username=user["username"].upper()))
        assert again.json() == {"status": 409, "message": "username already exists"}
        again = await client.post("/users", json=new_user(email=user["email"].upper()))
        assert again.json() == {"status": 409, "message": "email already exists"}

    async def test_stores_an_argon2_hash_and_emits_a_user_created_event(
        self, client: httpx.AsyncClient, settings: Settings
    ) -> None:
        user = await create(client)
        engine = create_async_engine(settings.database_url)
        async with engine.connect() as conn:
            stored = await conn.scalar(text("SELECT password_hash FROM users WHERE id = :id"), {"id": user["id"]})
            event = await conn.scalar(
                text("SELECT headers->>'event_type' FROM outbox WHERE key = :k"), {"k": str(user["id"])}
            )
        await engine.dispose()
        assert stored.startswith("$argon2id$")
        assert event == "user_created"


class TestAvatarUrls:
    @pytest.mark.parametrize(
        "url", ["javascript:alert(1)", "http://169.254.169.254/latest/meta-data/", "http://localhost/"]
    )
    async def test_only_public_web_addresses(self, client: httpx.AsyncClient, url: str) -> None:
        refused = await client.post("/users", json=new_user(avatar_url=url))
        assert refused.json() == {"status": 400, "message": "validation failed"}
        user = await create(client, avatar_url="https://x.io/a.png")
        refused = await client.put(f"/users/{user['id']}/avatar", json={"avatar_url": url})
        assert refused.json() == {"status": 400, "message": "validation failed"}
        assert (await client.get(f"/users/{user['id']}")).json()["data"]["avatar_url"] == "https://x.io/a.png"


class TestReadsAndCache:
    async def test_lookups_by_id_username_and_email_agree(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        by_id = (await client.get(f"/users/{user['id']}")).json()
        by_name = (await client.get(f"/users/by-username/{user['username'].upper()}")).json()
        by_email = (await client.get(f"/users/by-email/{user['email']}")).json()
        assert by_id == by_name == by_email == {"status": 200, "data": user}

    async def test_cache_never_holds_password_hashes(
        self, client: httpx.AsyncClient, redis: Redis, settings: Settings
    ) -> None:
        user = await create(client)
        await client.get(f"/users/{user['id']}")
        keys = [k async for k in redis.scan_iter(f"{settings.key_prefix}*")]
        assert keys
        values = [await redis.get(k) or b"" for k in keys]
        assert all(b"argon2" not in v and b"password" not in v for v in values)

    async def test_update_invalidates_every_cached_representation(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        for path in (f"/users/{user['id']}", f"/users/by-username/{user['username']}"):
            assert (await client.get(path)).status_code == 200  # warm the cache
        renamed = f"r{uuid.uuid4().hex[:12]}"
        response = await client.patch(f"/users/{user['id']}", json={"username": renamed, "bio": "new bio here"})
        assert response.status_code == 200
        fresh = (await client.get(f"/users/{user['id']}")).json()["data"]
        assert fresh["username"] == renamed and fresh["bio"] == "new bio here"
        assert (await client.get(f"/users/by-username/{user['username']}")).status_code == 404

    async def test_delete_removes_the_user_and_its_cache_entries(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        await client.get(f"/users/{user['id']}")
        assert (await client.delete(f"/users/{user['id']}")).status_code == 204
        assert (await client.get(f"/users/{user['id']}")).json() == {"status": 404, "message": "user not found"}
        assert (await client.delete(f"/users/{user['id']}")).status_code == 404


class TestSearch:
    async def test_total_counts_every_match_and_pages_are_stable(self, client: httpx.AsyncClient) -> None:
        tag = uuid.uuid4().hex[:10]
        ids = [(await create(client, full_name=f"Searchable {tag} {i}"))["id"] for i in range(5)]
        first = (await client.get("/users/search", params={"query": tag, "page": 1, "limit": 2})).json()["data"]
        third = (await client.get("/users/search", params={"query": tag, "page": 3, "limit": 2})).json()["data"]
        beyond = (await client.get("/users/search", params={"query": tag, "page": 9, "limit": 2})).json()["data"]
        assert first["total"] == third["total"] == beyond["total"] == 5
        assert [u["id"] for u in first["users"]] == ids[:2]
        assert [u["id"] for u in third["users"]] == ids[4:]
        assert beyond["users"] == []

    async def test_cursor_pages_follow_the_id_order(self, client: httpx.AsyncClient) -> None:
        tag = uuid.uuid4().hex[:10]
        ids = [(await create(client, full_name=f"Cursor {tag} {i}"))["id"] for i in range(5)]
        first = await client.get("/users/search", params={"query": tag, "limit": 2})
        assert set(first.json()["data"]) == {"users", "total"}  # upstream's shape without a cursor
        seen = [u["id"] for u in first.json()["data"]["users"]]
        cursor: str | None = first.headers["X-Next-Cursor"]
        while cursor:
            response = await client.get("/users/search", params={"query": tag, "limit": 2, "cursor": cursor})
            data = response.json()["data"]
            assert data["total"] == 5
            seen += [u["id"] for u in data["users"]]
            cursor = data["next_cursor"]
        assert seen == ids
        bad = await client.get("/users/search", params={"query": tag, "cursor": "MTox"})
        assert bad.json() == {"status": 400, "message": "validation failed"}

    @pytest.mark.parametrize("term", ["%", "_", "\\", "' OR 1=1 --"])
    async def test_metacharacters_match_literally(self, client: httpx.AsyncClient, term: str) -> None:
        response = await client.get("/users/search", params={"query": term})
        assert response.status_code == 200
        assert all(
            term.lower() in (u["username"] + u["email"] + u.get("full_name", "")).lower()
            for u in response.json()["data"]["users"]
        )


class TestCredentials:
    async def test_verify_by_username_or_email(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        for login in (user["username"], user["email"]):
            response = await client.post("/credentials/verify", json={"login": login, "password": "correct horse"})
            assert response.json() == {"status": 200, "data": {"user_id": user["id"]}}

    async def test_wrong_password_and_unknown_user(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        wrong = await client.post("/credentials/verify", json={"login": user["username"], "password": "nope nope"})
        assert wrong.json() == {"status": 401, "message": "invalid credentials"}
        unknown = await client.post("/credentials/verify", json={"login": "nobody-here", "password": "whatever"})
        assert unknown.json() == {"status": 404, "message": "user not found"}

    async def test_change_password_checks_the_old_one(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        path = f"/users/{user['id']}/password"
        bad = await client.put(path, json={"old_password": "wrong one", "new_password": "brand new pw"})
        assert bad.json() == {"status": 401, "message": "invalid credentials"}
        good = await client.put(path, json={"old_password": "correct horse", "new_password": "brand new pw"})
        assert good.json() == {"status": 200}
        login = await client.post("/credentials/verify", json={"login": user["username"], "password": "brand new pw"})
        assert login.status_code == 200


class TestMetrics:
    async def test_pool_cache_and_route_metrics_are_exported(self, client: httpx.AsyncClient) -> None:
        user = await create(client)
        await client.get(f"/users/{user['id']}")
        await client.get(f"/users/{user['id']}")
        text = (await client.get("/metrics")).text
        assert "db_pool_size 10.0" in text
        assert 'cache_requests_total{cache="user",result="hit"}' in text
        assert 'http_requests_total{method="GET",route="/users/{user_id}",status="200"}' in text
