"""The posts service on the real PostgreSQL and Redis (and a real users server for the fallback)."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi import FastAPI
from posts_support import UserEvent, new_user
from redis.asyncio import Redis
from sqlalchemy import text

from pinstack_contracts.events import Event
from pinstack_posts.config import Settings
from pinstack_posts.main import create_app
from pinstack_posts.posts.service import PostCache
from pinstack_posts.worker import consumers
from pinstack_testing import app_client, eventually, kafka_producer, kafka_reader, sql_statements, worker

pytestmark = pytest.mark.integration

IMAGE = {"url": "https://cdn.example.com/a.png", "type": "image", "position": 1}


async def create(client: httpx.AsyncClient, author_id: int, **fields: Any) -> dict[str, Any]:
    response = await client.post("/posts", json={"author_id": author_id, "title": "A title", **fields})
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def read(client: httpx.AsyncClient, post_id: int) -> dict[str, Any]:
    response = await client.get(f"/posts/{post_id}")
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def listing(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    response = await client.get("/posts", params=params)
    assert response.status_code == 200, response.text
    return response.json()["data"]


async def sql(app: FastAPI, statement: str, **params: Any) -> list[Any]:
    async with app.state.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def events_of(app: FastAPI, post_id: int) -> list[tuple[str, dict[str, Any]]]:
    rows = await sql(app, "SELECT headers->>'event_type', value FROM outbox WHERE key = :k ORDER BY id", k=str(post_id))
    return [(kind, orjson.loads(bytes(value))) for kind, value in rows]


@pytest.fixture
async def author(user_event: UserEvent) -> dict[str, Any]:
    return await user_event("user_created", new_user(full_name="Ada Lovelace", avatar_url="https://x.io/ada.png"))


class TestCreate:
    async def test_answers_the_flattened_shape_with_every_author_field(
        self, client: httpx.AsyncClient, user_event: UserEvent
    ) -> None:
        user = await user_event("user_created", new_user(full_name="Ada", bio="Maths", avatar_url="https://x.io/a"))
        post = await create(client, user["id"], content="Hello there", tags=["art"], media_items=[IMAGE])
        assert set(post) == {
            "id", "title", "content", "created_at", "updated_at", "author_id", "author_username",
            "author_email", "author_full_name", "author_bio", "author_avatar_url", "media", "tags",
        }  # fmt: skip
        assert post["author_id"] == user["id"] and post["author_email"] == user["email"]
        assert post["author_bio"] == "Maths" and post["tags"] == [{"id": 0, "name": "art"}]
        assert post["media"] == [{"id": post["media"][0]["id"], **IMAGE}]
        assert post["created_at"].endswith("Z") and len(post["created_at"]) == 20

    async def test_omits_what_is_empty(self, client: httpx.AsyncClient, user_event: UserEvent) -> None:
        user = await user_event("user_created", new_user())
        post = await create(client, user["id"], content="", tags=[], media_items=[])
        keys = {"id", "title", "created_at", "updated_at", "author_id", "author_username", "author_email"}
        assert set(post) == keys
        assert set(await read(client, post["id"])) == {"id", "author", "title", "created_at", "updated_at"}

    async def test_title_length_counts_code_points(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        assert (await create(client, author["id"], title="😀" * 255))["title"] == "😀" * 255
        for title in ("😀" * 256, ""):
            response = await client.post("/posts", json={"author_id": author["id"], "title": title})
            assert response.json() == {"status": 400, "message": "validation failed"}

    async def test_duplicate_media_positions_are_allowed(
        self, client: httpx.AsyncClient, author: dict[str, Any]
    ) -> None:
        video = {"url": "https://cdn.example.com/b.mp4", "type": "video", "position": 1}
        post = await create(client, author["id"], media_items=[IMAGE, video])
        assert [(m["url"], m["position"]) for m in (await read(client, post["id"]))["media"]] == [
            (IMAGE["url"], 1),
            (video["url"], 1),
        ]

    async def test_duplicate_tags_collapse_in_order(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        names = ["b", "a", "b", "B", "a"]
        post = await create(client, author["id"], tags=names)
        expected = [{"id": 0, "name": n} for n in ("b", "a", "B")]
        assert post["tags"] == expected
        assert (await read(client, post["id"]))["tags"] == expected

    async def test_reuses_existing_tags(self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI) -> None:
        name = uuid.uuid4().hex
        for _ in range(2):
            await create(client, author["id"], tags=[name])
        assert await sql(app, "SELECT count(*) FROM tags WHERE name = :n", n=name) == [(1,)]

    async def test_a_post_with_media_and_tags_is_one_statement_with_its_event(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        video = {"url": "https://cdn.example.com/v.mp4", "type": "video", "position": 1}
        with sql_statements(app.state.engine) as seen:
            post = await create(client, author["id"], tags=["a", uuid.uuid4().hex], media_items=[IMAGE, video])
        assert [statement.split()[0] for statement in seen] == ["WITH"]
        assert [(m["url"], m["position"]) for m in post["media"]] == [(IMAGE["url"], 1), (video["url"], 1)]
        assert (
            post["media"][0]["id"] < post["media"][1]["id"]
            and post["media"] == (await read(client, post["id"]))["media"]
        )

    @pytest.mark.parametrize("write", ["create", "update"])
    async def test_a_tag_another_post_commits_meanwhile_is_linked_too(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI, write: str
    ) -> None:
        """The statement's snapshot predates a tag that a concurrent post inserted first and
        commits while this one waits on it: that link is made in a second statement."""
        old, new = uuid.uuid4().hex, uuid.uuid4().hex
        post = await create(client, author["id"], tags=[old])
        async with app.state.engine.connect() as other:
            await other.execute(text("INSERT INTO tags (name) VALUES (:n)"), {"n": new})  # not committed yet
            if write == "create":
                writing = client.post("/posts", json={"author_id": author["id"], "title": "t", "tags": [old, new]})
            else:
                body = {"user_id": author["id"], "tags": [old, new]}
                writing = client.put(f"/posts/{post['id']}", json=body)
            task = asyncio.create_task(writing)

            async def blocked() -> bool:
                waiting = (
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND wait_event_type = 'Lock' AND query LIKE 'WITH %'"
                )
                return await sql(app, waiting) == [(1,)]

            await eventually(blocked)
            await other.commit()
            response = await task
        assert response.status_code in (200, 201), response.text
        post_id = response.json()["data"]["id"]
        expected = [{"id": 0, "name": old}, {"id": 0, "name": new}]
        assert response.json()["data"]["tags"] == expected and (await read(client, post_id))["tags"] == expected

    @pytest.mark.parametrize(
        "fields",
        [
            {"tags": [f"t{i}" for i in range(11)]},
            {"tags": ["x" * 51]},
            {"tags": [""]},
            {"content": "c" * 200_001},
            {"title": "nul\x00"},
            {"media_items": [IMAGE] * 10},
            {"media_items": [{**IMAGE, "url": "not-a-url"}]},
            {"media_items": [{**IMAGE, "url": "javascript:alert(1)"}]},
            {"media_items": [{**IMAGE, "url": "http://169.254.169.254/latest/meta-data/"}]},
            {"media_items": [{**IMAGE, "url": "https://x.io/" + "a" * 500}]},
            {"media_items": [{**IMAGE, "type": "gif"}]},
            {"media_items": [{**IMAGE, "position": 0}]},
            {"media_items": [{**IMAGE, "position": 10}]},
            {"media_items": [None]},
        ],
    )
    async def test_bad_input_is_validation_failed(
        self, client: httpx.AsyncClient, author: dict[str, Any], fields: dict[str, Any]
    ) -> None:
        response = await client.post("/posts", json={"author_id": author["id"], "title": "t", **fields})
        assert response.json() == {"status": 400, "message": "validation failed"}

    async def test_limits_are_inclusive(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        post = await create(
            client,
            author["id"],
            content="c" * 200_000,
            tags=[f"t{i}" for i in range(10)] + ["t0"],
            media_items=[{**IMAGE, "position": 9 - i} for i in range(9)],
        )
        assert len(post["tags"]) == 10
        assert [m["position"] for m in post["media"]] == list(range(1, 10))

    async def test_emits_post_created(self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI) -> None:
        post = await create(client, author["id"], tags=["x", "y"])
        [(kind, value)] = await events_of(app, post["id"])
        assert kind == "post_created" and value["aggregate_id"] == str(post["id"])
        # the statement filled in the id and the time: the bytes are Python's serialisation all the same
        [(raw,)] = await sql(app, "SELECT value FROM outbox WHERE key = :k", k=str(post["id"]))
        assert bytes(raw) == Event.model_validate(value).model_dump_json().encode()
        assert value["data"] == {
            "id": post["id"],
            "author_id": author["id"],
            "title": "A title",
            "created_at": post["created_at"],
            "tags": ["x", "y"],
        }


class TestUsersFallback:
    """The `user_created` event may lag behind a first post: the author is fetched once over HTTP."""

    @pytest.fixture
    async def fallback_client(self, settings: Settings, users_url: str) -> Any:
        async with app_client(create_app(settings.model_copy(update={"users_url": users_url}))) as client:
            yield client

    async def test_unknown_author_is_fetched_from_the_users_service(
        self, fallback_client: httpx.AsyncClient, users_url: str
    ) -> None:
        name = f"f{uuid.uuid4().hex[:12]}"
        async with httpx.AsyncClient(base_url=users_url) as users:
            body = {"username": name, "email": f"{name}@example.com", "password": "long enough", "bio": "hi"}
            user = (await users.post("/users", json=body)).json()["data"]
        post = await create(fallback_client, user["id"])
        assert (post["author_username"], post["author_email"], post["author_bio"]) == (name, user["email"], "hi")
        assert (await read(fallback_client, post["id"]))["author"] == {"id": user["id"], "username": name}

    async def test_a_user_that_does_not_exist_is_user_not_found(self, fallback_client: httpx.AsyncClient) -> None:
        response = await fallback_client.post("/posts", json={"author_id": 2**62, "title": "t"})
        assert response.json() == {"status": 404, "message": "user not found"}


class TestRead:
    async def test_nests_the_author_and_orders_media_by_position(
        self, client: httpx.AsyncClient, author: dict[str, Any]
    ) -> None:
        media = [{**IMAGE, "url": f"https://x.io/{p}", "position": p} for p in (3, 1, 2)]
        post = await create(client, author["id"], content="body", media_items=media, tags=["z", "a"])
        got = await read(client, post["id"])
        assert got["author"] == {
            "id": author["id"],
            "username": author["username"],
            "full_name": "Ada Lovelace",
            "avatar_url": "https://x.io/ada.png",
        }
        assert [m["position"] for m in got["media"]] == [1, 2, 3]
        assert got["tags"] == [{"id": 0, "name": "z"}, {"id": 0, "name": "a"}]
        assert (got["content"], got["created_at"], got["updated_at"]) == (
            "body",
            post["created_at"],
            post["updated_at"],
        )

    async def test_unknown_post(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/posts/999999999")).json() == {"status": 404, "message": "post not found"}
        assert (await client.get("/posts/0")).json() == {"status": 400, "message": "validation failed"}

    async def test_a_cached_read_costs_no_sql(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI, redis: Redis, settings: Settings
    ) -> None:
        post = await create(client, author["id"], tags=["t"], media_items=[IMAGE])
        with sql_statements(app.state.engine) as miss:
            first = await client.get(f"/posts/{post['id']}")
        with sql_statements(app.state.engine) as hit:
            second = await client.get(f"/posts/{post['id']}")
        assert first.content == second.content
        assert len(miss) <= 3 and hit == []
        assert await redis.get(f"{settings.key_prefix}post:{post['id']}") == orjson.dumps(first.json()["data"])


class TestList:
    async def test_total_counts_every_match_and_pages_are_newest_first(
        self, client: httpx.AsyncClient, author: dict[str, Any]
    ) -> None:
        ids = [(await create(client, author["id"], title=f"p{i}"))["id"] for i in range(5)]
        newest = ids[::-1]
        pages = [await listing(client, author_id=author["id"], limit=2, offset=o) for o in (0, 2, 4, 10)]
        assert [p["total"] for p in pages] == [5, 5, 5, 5]
        assert [[post["id"] for post in p["posts"]] for p in pages] == [newest[:2], newest[2:4], newest[4:], []]
        assert len((await listing(client, author_id=author["id"]))["posts"]) == 5

    async def test_cursor_pages_break_ties_by_id_and_survive_inserts(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        ids = [(await create(client, author["id"], title=f"p{i}"))["id"] for i in range(5)]
        # Equal timestamps: only the id orders them, and the cursor must carry it.
        await sql(app, "UPDATE posts SET created_at = '2024-05-01T12:00:00Z' WHERE id = ANY(:ids)", ids=ids)
        first = await client.get("/posts", params={"author_id": author["id"], "limit": 2})
        assert set(first.json()["data"]) == {"posts", "total"}  # offset mode: upstream's shape
        cursor, seen = first.headers["X-Next-Cursor"], [p["id"] for p in first.json()["data"]["posts"]]
        while cursor:
            await create(client, author["id"], title="newer")  # at the head: never on a later page
            response = await client.get("/posts", params={"author_id": author["id"], "limit": 2, "cursor": cursor})
            data = response.json()["data"]
            assert data["total"] == 5 + len(seen) // 2
            seen += [p["id"] for p in data["posts"]]
            cursor = data["next_cursor"]
            assert response.headers.get("X-Next-Cursor") == cursor
        assert seen == sorted(ids, reverse=True)

    @pytest.mark.parametrize("cursor", ["%%%", "MQ", "LTE6Mg", "x" * 201])
    async def test_a_bad_cursor_is_validation_failed(self, client: httpx.AsyncClient, cursor: str) -> None:
        response = await client.get("/posts", params={"cursor": cursor})
        assert (response.status_code, response.json()["message"]) == (400, "validation failed")

    async def test_list_items_have_the_read_shape(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        post = await create(client, author["id"], content="c", tags=["t"], media_items=[IMAGE])
        [item] = (await listing(client, author_id=author["id"]))["posts"]
        assert item == await read(client, post["id"])

    async def test_tag_filter_ignores_case(
        self, client: httpx.AsyncClient, author: dict[str, Any], user_event: UserEvent
    ) -> None:
        tag = f"Tag{uuid.uuid4().hex[:8]}"
        other = await user_event("user_created", new_user())
        tagged = [
            (await create(client, author["id"], tags=[tag, "x"]))["id"],
            (await create(client, other["id"], tags=[tag.lower()]))["id"],
        ]
        await create(client, author["id"], tags=["x"])
        found = await listing(client, tag=tag.upper())
        assert found["total"] == 2 and [p["id"] for p in found["posts"]] == tagged[::-1]
        mine = await listing(client, tag=tag, author_id=author["id"])
        assert [p["id"] for p in mine["posts"]] == tagged[:1]

    async def test_date_filters_are_strict_on_the_times_shown(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        t = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
        stored = [t - timedelta(seconds=1), t + timedelta(milliseconds=400), t + timedelta(seconds=1)]
        ids = []
        for when in stored:
            post = await create(client, author["id"])
            await sql(app, "UPDATE posts SET created_at = :w WHERE id = :id", w=when, id=post["id"])
            ids.append(post["id"])

        async def found(**params: str) -> list[int]:
            return [p["id"] for p in (await listing(client, author_id=author["id"], **params))["posts"]]

        assert await found(created_after="2024-05-01T12:00:00Z") == [ids[2]]
        assert await found(created_before="2024-05-01T12:00:00Z") == [ids[0]]
        assert await found(created_after="2024-05-01T11:59:59Z", created_before="2024-05-01T12:00:01Z") == [ids[1]]
        assert await found(created_after="2024-05-01T13:59:59+02:00") == [ids[2], ids[1]]
        assert (await read(client, ids[1]))["created_at"] == "2024-05-01T12:00:00Z"

    @pytest.mark.parametrize(
        "params",
        [
            {"created_after": "9999-12-31T23:59:59Z"},
            {"created_after": "9999-12-31T23:59:59-23:59"},
            {"created_before": "0001-01-01T00:00:00+23:59"},
            {"created_before": "0001-01-01T00:00:00Z"},
        ],
    )
    async def test_times_at_the_edges_of_the_calendar_match_nothing(
        self, client: httpx.AsyncClient, author: dict[str, Any], params: dict[str, str]
    ) -> None:
        await create(client, author["id"])
        assert await listing(client, **params) == {"posts": [], "total": 0}

    @pytest.mark.parametrize(
        "params",
        [
            {"limit": 101},
            {"limit": -1},
            {"offset": -1},
            {"author_id": -1},
            {"created_after": "2024-05-01"},
            {"created_before": "yesterday"},
            {"created_after": "2024-13-01T00:00:00Z"},
        ],
    )
    async def test_bad_query_is_validation_failed(self, client: httpx.AsyncClient, params: dict[str, Any]) -> None:
        assert (await client.get("/posts", params=params)).json() == {"status": 400, "message": "validation failed"}

    async def test_a_page_costs_the_same_statements_whatever_its_size(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        for i in range(21):
            await create(client, author["id"], tags=[f"t{i}", "common"], media_items=[IMAGE, IMAGE])
        counts = []
        for limit in (2, 20):
            with sql_statements(app.state.engine) as seen:
                page = await listing(client, author_id=author["id"], limit=limit)
            assert len(page["posts"]) == limit and page["total"] == 21
            assert all(len(p["media"]) == 2 and len(p["tags"]) == 2 for p in page["posts"])
            counts.append(len(seen))
        assert counts == [4, 4]  # page with authors, count, media, tags


class TestBatch:
    async def test_posts_in_the_order_asked_unknown_ids_skipped_in_three_statements(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        ids = [
            (await create(client, author["id"], title=f"b{i}", tags=[f"t{i}"], media_items=[IMAGE]))["id"]
            for i in range(3)
        ]
        asked = [ids[2], 999_999_999, ids[0], ids[2], ids[1]]
        with sql_statements(app.state.engine) as seen:
            response = await client.get("/posts/batch", params={"ids": ",".join(map(str, asked))})
        assert response.status_code == 200, response.text
        posts = response.json()["data"]["posts"]
        assert [p["id"] for p in posts] == [ids[2], ids[0], ids[1]]
        assert posts[1] == await read(client, ids[0])  # the shape of GET /posts/{id}
        assert len(seen) == 3  # posts with authors, media, tags

        # Again: every post comes from the cache GET /posts/{id} fills, and its invalidation holds.
        # (An unknown id is not cached: it costs one query each time.)
        with sql_statements(app.state.engine) as seen:
            again = await client.get("/posts/batch", params={"ids": ",".join(map(str, [ids[2], ids[0], ids[1]]))})
        assert again.json()["data"]["posts"] == posts and seen == []
        changed = await client.put(f"/posts/{ids[1]}", json={"user_id": author["id"], "title": "renamed"})
        assert changed.status_code == 200, changed.text
        after = (await client.get("/posts/batch", params={"ids": str(ids[1])})).json()["data"]["posts"]
        assert after[0]["title"] == "renamed"

    async def test_only_unknown_ids_is_an_empty_list(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/posts/batch", params={"ids": "999999998,999999999"})
        assert response.json() == {"status": 200, "data": {"posts": []}}

    @pytest.mark.parametrize(
        "ids", ["", "a", "0", "-1", "1,,2", "9223372036854775808", ",".join(str(i) for i in range(1, 102))]
    )
    async def test_bad_ids_are_validation_failed(self, client: httpx.AsyncClient, ids: str) -> None:
        response = await client.get("/posts/batch", params={"ids": ids})
        assert response.json() == {"status": 400, "message": "validation failed"}

    async def test_missing_ids_is_a_400(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/posts/batch")).status_code == 400


class TestUpdate:
    async def test_empty_or_absent_fields_change_nothing_but_updated_at(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        post = await create(client, author["id"], content="body", tags=["a"], media_items=[IMAGE])
        await sql(app, "UPDATE posts SET updated_at = updated_at - interval '1 hour' WHERE id = :id", id=post["id"])
        before = await read(client, post["id"])
        body = {"user_id": author["id"], "title": "", "content": "", "tags": [], "media_items": []}
        response = await client.put(f"/posts/{post['id']}", json=body)
        assert response.status_code == 200, response.text
        after = response.json()["data"]
        assert after["updated_at"] > before["updated_at"]
        assert {**after, "updated_at": None} == {**before, "updated_at": None}
        assert (await client.put(f"/posts/{post['id']}", json={"user_id": author["id"]})).status_code == 200

    async def test_given_fields_replace_the_stored_ones(
        self, client: httpx.AsyncClient, author: dict[str, Any]
    ) -> None:
        post = await create(client, author["id"], content="body", tags=["a", "b"], media_items=[IMAGE])
        video = {"url": "https://x.io/v.mp4", "type": "video", "position": 2}
        body = {
            "user_id": author["id"],
            "title": "New",
            "content": "new body",
            "tags": ["c", "c"],
            "media_items": [video],
        }
        updated = (await client.put(f"/posts/{post['id']}", json=body)).json()["data"]
        assert (updated["title"], updated["content"], updated["tags"]) == ("New", "new body", [{"id": 0, "name": "c"}])
        assert [(m["url"], m["type"], m["position"]) for m in updated["media"]] == [(video["url"], "video", 2)]
        assert updated["author"]["id"] == author["id"]
        assert await read(client, post["id"]) == updated

    async def test_only_tags_or_only_media(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        post = await create(client, author["id"], content="body", tags=["a"], media_items=[IMAGE])
        path = f"/posts/{post['id']}"
        only_tags = (await client.put(path, json={"user_id": author["id"], "tags": ["b"]})).json()["data"]
        assert only_tags["tags"] == [{"id": 0, "name": "b"}] and only_tags["media"] == post["media"]
        new_media = [{**IMAGE, "url": "https://x.io/2.png"}]
        only_media = (await client.put(path, json={"user_id": author["id"], "media_items": new_media})).json()["data"]
        assert only_media["tags"] == [{"id": 0, "name": "b"}] and only_media["media"][0]["url"] == "https://x.io/2.png"
        assert only_media["content"] == "body" and only_media["title"] == "A title"

    async def test_forbidden_and_not_found(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        post = await create(client, author["id"])
        someone_else = await client.put(f"/posts/{post['id']}", json={"user_id": author["id"] + 1, "title": "mine"})
        assert someone_else.json() == {"status": 403, "message": "forbidden"}
        assert (await read(client, post["id"]))["title"] == "A title"
        missing = await client.put("/posts/999999999", json={"user_id": author["id"], "title": "x"})
        assert missing.json() == {"status": 404, "message": "post not found"}
        invalid = await client.put(f"/posts/{post['id']}", json={"user_id": author["id"], "title": "x" * 256})
        assert invalid.json() == {"status": 400, "message": "validation failed"}

    async def test_invalidates_the_cache_and_emits_post_updated(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        post = await create(client, author["id"], tags=["keep"])
        await read(client, post["id"])  # warm the cache
        await client.put(f"/posts/{post['id']}", json={"user_id": author["id"], "title": "Renamed"})
        assert (await read(client, post["id"]))["title"] == "Renamed"
        kinds = [(kind, value["data"]) for kind, value in await events_of(app, post["id"])]
        assert kinds[-1] == (
            "post_updated",
            {
                "id": post["id"],
                "author_id": author["id"],
                "title": "Renamed",
                "created_at": post["created_at"],
                "tags": ["keep"],
            },
        )


class TestDelete:
    async def test_only_the_author_deletes(
        self, client: httpx.AsyncClient, author: dict[str, Any], app: FastAPI
    ) -> None:
        post = await create(client, author["id"], tags=["t"], media_items=[IMAGE])
        await read(client, post["id"])  # warm the cache
        path = f"/posts/{post['id']}"
        forbidden = await client.delete(path, params={"user_id": author["id"] + 1})
        assert forbidden.json() == {"status": 403, "message": "forbidden"}
        assert (await client.delete(path, params={"user_id": author["id"]})).json() == {"status": 200}
        assert (await client.get(path)).json() == {"status": 404, "message": "post not found"}
        again = await client.delete(path, params={"user_id": author["id"]})
        assert again.json() == {"status": 404, "message": "post not found"}
        assert await sql(app, "SELECT count(*) FROM post_media WHERE post_id = :id", id=post["id"]) == [(0,)]
        kind, value = (await events_of(app, post["id"]))[-1]
        assert (kind, value["data"]) == ("post_deleted", {"id": post["id"], "author_id": author["id"]})

    async def test_user_id_is_required(self, client: httpx.AsyncClient, author: dict[str, Any]) -> None:
        post = await create(client, author["id"])
        assert (await client.delete(f"/posts/{post['id']}")).json() == {"status": 400, "message": "validation failed"}


class TestCacheRaces:
    """A reader that loaded a post before a change committed, and stores it only after the change
    invalidated the cache, must not put the old post back for the cache's whole TTL."""

    @pytest.mark.parametrize("change", ["update", "delete", "user_deleted"])
    async def test_a_slow_reader_cannot_store_the_old_post(
        self,
        client: httpx.AsyncClient,
        author: dict[str, Any],
        user_event: UserEvent,
        redis: Redis,
        settings: Settings,
        change: str,
    ) -> None:
        post = await create(client, author["id"], title="Old")
        loaded = orjson.dumps(await read(client, post["id"]))  # what the slow reader holds
        path = f"/posts/{post['id']}"
        if change == "update":
            await client.put(path, json={"user_id": author["id"], "title": "New"})
        elif change == "delete":
            await client.delete(path, params={"user_id": author["id"]})
        else:
            await user_event("user_deleted", {"id": author["id"]})
        await PostCache(redis, settings).put_many({post["id"]: loaded})  # the slow reader stores it
        response = (await client.get(path)).json()
        if change == "update":
            assert response["data"]["title"] == "New"
        else:
            assert response == {"status": 404, "message": "post not found"}


class TestAuthorProjection:
    async def test_a_profile_change_reaches_cached_posts(
        self, client: httpx.AsyncClient, author: dict[str, Any], user_event: UserEvent
    ) -> None:
        post = await create(client, author["id"])
        assert (await read(client, post["id"]))["author"]["username"] == author["username"]  # cached now
        later = (datetime.now(UTC) + timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
        renamed = {**author, "username": "renamed" + uuid.uuid4().hex[:6], "updated_at": later}
        del renamed["full_name"]
        await user_event("user_updated", renamed)
        assert (await read(client, post["id"]))["author"] == {
            "id": author["id"],
            "username": renamed["username"],
            "avatar_url": author["avatar_url"],
        }

    async def test_an_older_event_does_not_undo_a_newer_one(
        self, client: httpx.AsyncClient, author: dict[str, Any], user_event: UserEvent
    ) -> None:
        post = await create(client, author["id"])
        stale = {**author, "username": "stale", "updated_at": "2000-01-01T00:00:00Z"}
        await user_event("user_updated", stale)
        assert (await read(client, post["id"]))["author"]["username"] == author["username"]

    async def test_deleting_the_user_deletes_its_posts_with_events(
        self, client: httpx.AsyncClient, author: dict[str, Any], user_event: UserEvent, app: FastAPI
    ) -> None:
        ids = [(await create(client, author["id"], tags=["t"], media_items=[IMAGE]))["id"] for _ in range(3)]
        await read(client, ids[0])  # cached
        await user_event("user_deleted", {"id": author["id"]})
        for post_id in ids:
            assert (await client.get(f"/posts/{post_id}")).json() == {"status": 404, "message": "post not found"}
            kind, value = (await events_of(app, post_id))[-1]
            assert (kind, value["data"]) == ("post_deleted", {"id": post_id, "author_id": author["id"]})
        assert (await listing(client, author_id=author["id"]))["total"] == 0
        assert await sql(app, "SELECT count(*) FROM authors WHERE id = :id", id=author["id"]) == [(0,)]

    async def test_other_event_types_are_ignored(self, user_event: UserEvent, app: FastAPI) -> None:
        user = await user_event("user_password_changed", new_user())
        assert await sql(app, "SELECT count(*) FROM authors WHERE id = :id", id=user["id"]) == [(0,)]


class TestWorker:
    async def test_user_events_in_post_events_out(self, service_settings: Callable[..., Settings]) -> None:
        # a database of its own: the relay publishes every unsent row it finds
        settings = service_settings(Settings, database="posts_worker", users_url="http://127.0.0.1:9")
        user = new_user()
        value = orjson.dumps({"event_id": "e1", "type": "user_created", "data": user})
        headers = [("event_id", b"e1"), ("event_type", b"user_created")]
        async with kafka_producer() as producer:
            await producer.send_and_wait(
                settings.topic("user-events"), value, key=str(user["id"]).encode(), headers=headers
            )
        # the consumer's group and topics are under the test prefix
        async with worker(settings, consumers(settings), relay="posts-test-relay") as engine:
            async with app_client(create_app(settings)) as client:

                async def author_known() -> bool:
                    async with engine.connect() as conn:
                        found = await conn.scalar(
                            text("SELECT username FROM authors WHERE id = :id"), {"id": user["id"]}
                        )
                    return bool(found == user["username"])

                await eventually(author_known, timeout=30.0)
                post = await create(client, user["id"], tags=["kafka"])
            key = str(post["id"]).encode()
            async with kafka_reader(settings.topic("post-events")) as received:

                async def post_created() -> Any:  # the topic may also hold other tests' events
                    batches = await received.getmany(timeout_ms=500)
                    return next((r for records in batches.values() for r in records if r.key == key), None)

                record = await eventually(post_created, timeout=30.0)
            assert dict(record.headers)["event_type"] == b"post_created"
            assert orjson.loads(record.value)["data"]["tags"] == ["kafka"]
