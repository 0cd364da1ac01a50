"""The activity service on the real PostgreSQL (and Kafka): likes, views, comments, mentions, stats."""

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from activity_support import Deliver, new_id, post_record, user_record
from fastapi import FastAPI
from sqlalchemy import text

from pinstack_activity.config import Settings
from pinstack_activity.main import create_app
from pinstack_activity.posts import repository as posts_repository
from pinstack_activity.posts.consumers import post_event_handler
from pinstack_activity.reactions.service import ReactionService
from pinstack_activity.users.service import UserDirectory
from pinstack_activity.worker import consumers
from pinstack_testing import (
    app_client,
    eventually,
    handle_batch,
    kafka_producer,
    kafka_reader,
    sql_statements,
    worker,
)

pytestmark = pytest.mark.integration

Post = dict[str, int]


async def sql(app: FastAPI, statement: str, **params: Any) -> list[Any]:
    async with app.state.engine.begin() as conn:
        result = await conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


async def events_of(app: FastAPI, post_id: int) -> list[dict[str, Any]]:
    rows = await sql(app, "SELECT value FROM outbox WHERE key = :k ORDER BY id", k=str(post_id))
    return [orjson.loads(bytes(value)) for (value,) in rows]


async def comment(
    client: httpx.AsyncClient, post_id: int, author_id: int, content: str = "Nice", **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        f"/posts/{post_id}/comments", json={"author_id": author_id, "content": content, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]


async def stats(client: httpx.AsyncClient, ids: list[int], viewer_id: int = 0) -> dict[str, Any]:
    response = await client.get("/posts/stats", params={"ids": ",".join(map(str, ids)), "viewer_id": viewer_id})
    assert response.status_code == 200, response.text
    return response.json()["data"]


class TestLikes:
    async def test_like_and_unlike_are_idempotent(self, client: httpx.AsyncClient, post: Post) -> None:
        path = f"/posts/{post['id']}/likes/{new_id()}"
        for _ in range(2):
            assert (await client.put(path)).json() == {"status": 200, "data": {"liked": True, "like_count": 1}}
        for _ in range(2):
            assert (await client.delete(path)).json() == {"status": 200, "data": {"liked": False, "like_count": 0}}

    async def test_twenty_concurrent_likes_count_once(
        self, client: httpx.AsyncClient, app: FastAPI, post: Post
    ) -> None:
        user = new_id()
        answers = await asyncio.gather(*(client.put(f"/posts/{post['id']}/likes/{user}") for _ in range(20)))
        assert {r.json()["data"]["like_count"] for r in answers} == {1}
        assert (await stats(client, [post["id"]], user))[str(post["id"])]["like_count"] == 1
        likes = [e for e in await events_of(app, post["id"]) if e["type"] == "like_created"]
        assert len(likes) == 1
        assert likes[0]["event_id"] == f"like_created:{post['id']}:{user}"
        assert likes[0]["data"] == {
            "post_id": post["id"],
            "post_author_id": post["author_id"],
            "user_id": user,
            "created_at": likes[0]["data"]["created_at"],
        }

    async def test_a_redone_like_keeps_its_event_id(self, client: httpx.AsyncClient, app: FastAPI, post: Post) -> None:
        path = f"/posts/{post['id']}/likes/{new_id()}"
        await client.put(path)
        await client.delete(path)
        await client.put(path)
        ids = {e["event_id"] for e in await events_of(app, post["id"]) if e["type"] == "like_created"}
        assert len(ids) == 1  # a consumer deduplicating by event id notifies once

    async def test_unknown_post(self, client: httpx.AsyncClient) -> None:
        for method in ("PUT", "DELETE"):
            response = await client.request(method, f"/posts/{new_id()}/likes/{new_id()}")
            assert response.json() == {"status": 404, "message": "post not found"}
        assert (await client.get(f"/posts/{new_id()}/likes")).json() == {"status": 404, "message": "post not found"}

    async def test_who_liked_newest_first_by_cursor(self, client: httpx.AsyncClient, post: Post) -> None:
        users = [new_id() for _ in range(7)]
        for user in users:
            await client.put(f"/posts/{post['id']}/likes/{user}")
        seen: list[int] = []
        params: dict[str, Any] = {"limit": 3}
        while True:
            page = (await client.get(f"/posts/{post['id']}/likes", params=params)).json()["data"]
            seen += [like["user_id"] for like in page["likes"]]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert seen == list(reversed(users))
        bad = await client.get(f"/posts/{post['id']}/likes", params={"cursor": "!!"})
        assert bad.json() == {"status": 400, "message": "validation failed"}


class TestViews:
    async def test_one_view_per_user_and_window(
        self, client: httpx.AsyncClient, app: FastAPI, settings: Settings, post: Post
    ) -> None:
        viewer = new_id()
        path = f"/posts/{post['id']}/views"
        answers = await asyncio.gather(*(client.post(path, json={"user_id": viewer}) for _ in range(20)))
        assert sorted(r.json()["data"]["counted"] for r in answers) == [False] * 19 + [True]
        assert (await client.post(path, json={"user_id": new_id()})).json()["data"] == {
            "counted": True,
            "view_count": 2,
        }
        later = datetime.now(UTC) + timedelta(seconds=settings.view_window_seconds)
        async with app.state.sessionmaker() as session, session.begin():
            counted = await ReactionService(session, settings).view(post["id"], viewer, now=later)
        assert counted == {"counted": True, "view_count": 3}
        assert (await client.post(f"/posts/{new_id()}/views", json={"user_id": viewer})).status_code == 404
        bad = await client.post(path, json={"user_id": 0})
        assert bad.json() == {"status": 400, "message": "validation failed"}


class TestComments:
    async def test_comments_and_replies_in_pages(self, client: httpx.AsyncClient, post: Post) -> None:
        first = await comment(client, post["id"], new_id(), "first")
        assert first["parent_id"] is None and first["content"] == "first" and first["post_id"] == post["id"]
        top = [first["id"]] + [(await comment(client, post["id"], new_id(), f"c{i}"))["id"] for i in range(4)]
        replies = [
            (await comment(client, post["id"], new_id(), f"r{i}", parent_id=first["id"]))["id"] for i in range(3)
        ]
        path = f"/posts/{post['id']}/comments"
        seen: list[dict[str, Any]] = []
        params: dict[str, Any] = {"limit": 2}
        while True:
            page = (await client.get(path, params=params)).json()["data"]
            seen += page["comments"]
            if page["next_cursor"] is None:
                break
            params["cursor"] = page["next_cursor"]
        assert [c["id"] for c in seen] == top  # oldest first, top level only
        assert [c["reply_count"] for c in seen] == [3, 0, 0, 0, 0]
        thread = (await client.get(path, params={"parent_id": first["id"]})).json()["data"]
        assert [c["id"] for c in thread["comments"]] == replies and thread["next_cursor"] is None
        assert (await stats(client, [post["id"]]))[str(post["id"])]["comment_count"] == 8

    async def test_bad_comments(self, client: httpx.AsyncClient, post: Post, deliver: Deliver) -> None:
        path = f"/posts/{post['id']}/comments"
        for content in ("", "   ", "x" * 2001):
            bad = await client.post(path, json={"author_id": new_id(), "content": content})
            assert bad.json() == {"status": 400, "message": "validation failed"}, content
        assert (await client.post(path, json={"author_id": new_id(), "content": "x" * 2000})).status_code == 201
        missing = await client.post(f"/posts/{new_id()}/comments", json={"author_id": 1, "content": "hi"})
        assert missing.json() == {"status": 404, "message": "post not found"}
        other = {"id": new_id(), "author_id": new_id()}
        await deliver(post_record("post_created", other["id"], other["author_id"]))
        elsewhere = await comment(client, other["id"], new_id())
        stray = await client.post(path, json={"author_id": 1, "content": "hi", "parent_id": elsewhere["id"]})
        assert stray.json() == {"status": 404, "message": "comment not found"}

    async def test_delete_rules(self, client: httpx.AsyncClient, post: Post) -> None:
        author = new_id()
        parent = await comment(client, post["id"], author)
        for _ in range(2):
            await comment(client, post["id"], new_id(), parent_id=parent["id"])
        mine = await comment(client, post["id"], author)
        forbidden = await client.delete(f"/comments/{parent['id']}", params={"user_id": new_id()})
        assert forbidden.json() == {"status": 403, "message": "forbidden"}
        assert (await client.delete(f"/comments/{mine['id']}", params={"user_id": author})).json() == {"status": 200}
        by_owner = await client.delete(f"/comments/{parent['id']}", params={"user_id": post["author_id"]})
        assert by_owner.json() == {"status": 200}
        again = await client.delete(f"/comments/{parent['id']}", params={"user_id": author})
        assert again.json() == {"status": 404, "message": "comment not found"}
        assert (await stats(client, [post["id"]]))[str(post["id"])]["comment_count"] == 0  # the replies went too
        assert (await client.get(f"/posts/{post['id']}/comments")).json()["data"]["comments"] == []


class TestMentions:
    async def test_comment_mentions_known_users_once(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver, post: Post
    ) -> None:
        tag = uuid.uuid4().hex[:8]
        alice, bob, writer = new_id(), new_id(), new_id()
        for user_id, name in ((alice, f"alice{tag}"), (bob, f"bob{tag}"), (writer, f"writer{tag}")):
            await deliver(user_record("user_created", user_id, name))
        text_ = f"hi @alice{tag}, @bob{tag}. @alice{tag} @nobody{tag} me@bob{tag}.com @writer{tag}"
        created = await comment(client, post["id"], writer, text_)
        events = await events_of(app, post["id"])
        comment_event = next(e for e in events if e["type"] == "comment_created")
        assert comment_event["event_id"] == f"comment_created:{created['id']}"
        assert (
            comment_event["data"]["post_author_id"] == post["author_id"]
            and comment_event["data"]["author_id"] == writer
        )
        mentions = [e for e in events if e["type"] == "mention_created"]
        assert [m["data"]["mentioned_user_id"] for m in mentions] == [alice, bob]
        assert mentions[0]["event_id"] == f"mention_created:comment:{created['id']}:{alice}"
        assert mentions[0]["data"] == {
            "mentioned_user_id": alice,
            "author_id": writer,
            "post_id": post["id"],
            "comment_id": created["id"],
            "source": "comment",
            "created_at": mentions[0]["data"]["created_at"],
        }

    async def test_post_titles_mention_once_and_renames_apply(self, app: FastAPI, deliver: Deliver) -> None:
        tag = uuid.uuid4().hex[:8]
        carol = new_id()
        await deliver(user_record("user_created", carol, f"carol{tag}", "2025-01-01T00:00:00Z"))
        await deliver(user_record("user_updated", carol, f"caro{tag}", "2025-01-02T00:00:00Z"))
        await deliver(user_record("user_updated", carol, f"stale{tag}", "2024-01-01T00:00:00Z"))  # older: ignored
        post_id, author = new_id(), new_id()
        created = post_record("post_created", post_id, author, f"with @caro{tag} and @carol{tag}")
        await deliver(created)
        await deliver(post_record("post_created", post_id, author, f"with @caro{tag}"))  # a replay
        mentions = [e for e in await events_of(app, post_id) if e["type"] == "mention_created"]
        assert [(m["event_id"], m["data"]["source"]) for m in mentions] == [
            (f"mention_created:post:{post_id}:{carol}", "post")
        ]
        await deliver(user_record("user_deleted", carol, f"caro{tag}"))
        assert await sql(app, "SELECT count(*) FROM users WHERE id = :id", id=carol) == [(0,)]


class TestStats:
    async def test_batch_counters_in_one_statement(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver
    ) -> None:
        viewer = new_id()
        posts = [new_id() for _ in range(30)]
        for post_id in posts:
            await deliver(post_record("post_created", post_id, new_id()))
        await client.put(f"/posts/{posts[0]}/likes/{viewer}")
        await client.put(f"/posts/{posts[0]}/likes/{new_id()}")
        await client.put(f"/posts/{posts[1]}/likes/{new_id()}")
        await comment(client, posts[1], viewer)
        await client.post(f"/posts/{posts[2]}/views", json={"user_id": viewer})
        unknown = new_id()
        with sql_statements(app.state.engine) as seen:
            result = await stats(client, [*posts, unknown], viewer)
        assert len(seen) == 1, seen
        assert result[str(posts[0])] == {"like_count": 2, "comment_count": 0, "view_count": 0, "liked_by_viewer": True}
        assert result[str(posts[1])] == {"like_count": 1, "comment_count": 1, "view_count": 0, "liked_by_viewer": False}
        assert result[str(posts[2])]["view_count"] == 1
        assert result[str(unknown)] == {"like_count": 0, "comment_count": 0, "view_count": 0, "liked_by_viewer": False}
        assert list(result) == [str(p) for p in [*posts, unknown]]

    @pytest.mark.parametrize("ids", ["", "1,x", "0", "1,,2", ",".join(map(str, range(1, 102))), "9223372036854775808"])
    async def test_bad_ids(self, client: httpx.AsyncClient, ids: str) -> None:
        response = await client.get("/posts/stats", params={"ids": ids})
        assert response.json() == {"status": 400, "message": "validation failed"}


class TestPostCreated:
    async def test_a_batch_of_posts_joins_the_projection_in_one_statement(
        self, app: FastAPI, settings: Settings, deliver: Deliver
    ) -> None:
        """Each post's lock and the tombstone check after it are one round trip (migrations/0004),
        and the consumer's batch one statement; a delete in the batch keeps its place, and a
        post already known is not new again."""
        known, gone, *fresh = (new_id() for _ in range(6))
        await deliver(post_record("post_created", known, new_id()))
        records = [post_record("post_created", post_id, new_id()) for post_id in (known, gone, *fresh)]
        records.insert(2, post_record("post_deleted", gone, new_id()))
        with sql_statements(app.state.engine) as seen:
            await handle_batch(app.state.sessionmaker, records, post_event_handler(settings))
        assert [statement.split(" FROM ")[0] for statement in seen] == [
            "SELECT n.id",  # known, gone
            "SELECT activity_delete_post(%(id)s)",
            "SELECT n.id",  # the four fresh ones
        ], seen
        rows = await sql(app, "SELECT id FROM posts WHERE id = ANY(:ids)", ids=[known, gone, *fresh])
        assert sorted(post_id for (post_id,) in rows) == sorted([known, *fresh])


class TestPostDeleted:
    async def test_a_deleted_post_takes_its_activity(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver, post: Post
    ) -> None:
        user = new_id()
        await client.put(f"/posts/{post['id']}/likes/{user}")
        await comment(client, post["id"], user)
        await client.post(f"/posts/{post['id']}/views", json={"user_id": user})
        await deliver(post_record("post_deleted", post["id"], post["author_id"]))
        for table in ("likes", "comments", "views"):
            assert await sql(app, f"SELECT count(*) FROM {table} WHERE post_id = :id", id=post["id"]) == [(0,)]  # noqa: S608
        assert (await client.put(f"/posts/{post['id']}/likes/{user}")).json() == {
            "status": 404,
            "message": "post not found",
        }


class TestProjectionLag:
    async def test_a_post_not_projected_yet_is_asked_for_once(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver, posts_url: str, service_server: Any
    ) -> None:
        """A like or comment right after the post was created, before `post_created` arrived."""
        post_id, author = await self.fresh_post(service_server, posts_url)
        liker = new_id()
        assert (await client.put(f"/posts/{post_id}/likes/{liker}")).json()["data"] == {"liked": True, "like_count": 1}
        await comment(client, post_id, liker)
        await deliver(post_record("post_created", post_id, author))  # the event arrives late: no change
        assert (await stats(client, [post_id], liker))[str(post_id)] == {
            "like_count": 1,
            "comment_count": 1,
            "view_count": 0,
            "liked_by_viewer": True,
        }
        assert await sql(app, "SELECT author_id FROM posts WHERE id = :id", id=post_id) == [(author,)]

    async def fresh_post(self, service_server: Any, posts_url: str) -> tuple[int, int]:
        """A post the posts service has and this projection has not seen: (post id, author id)."""
        name = f"lag{uuid.uuid4().hex[:10]}"
        async with httpx.AsyncClient(base_url=service_server("users")) as users:
            created = await users.post(
                "/users", json={"username": name, "email": f"{name}@example.com", "password": "long-enough-1"}
            )
        author = created.json()["data"]["id"]
        async with httpx.AsyncClient(base_url=posts_url) as posts:
            response = await posts.post("/posts", json={"author_id": author, "title": "Fresh"})
        return response.json()["data"]["id"], author

    async def test_a_deletion_consumed_before_the_late_lookup_wins(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver, posts_url: str, service_server: Any
    ) -> None:
        """The posts service still answers for the post (its delete is in flight), but activity has
        consumed `post_deleted` already: the post must not come back with a like."""
        post_id, author = await self.fresh_post(service_server, posts_url)
        await deliver(post_record("post_deleted", post_id, author))
        refused = await client.put(f"/posts/{post_id}/likes/{new_id()}")
        assert refused.json() == {"status": 404, "message": "post not found"}
        await deliver(post_record("post_created", post_id, author))  # a redelivered creation: still gone
        assert await sql(app, "SELECT count(*) FROM posts WHERE id = :id", id=post_id) == [(0,)]

    async def test_an_insert_and_a_delete_of_one_post_take_turns(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        """The interleaving the lock exists for: the delete commits while the insert's transaction
        is open. The insert waits for it, then sees the tombstone."""
        post_id = new_id()
        sessions = app.state.sessionmaker
        async with sessions() as deleting, sessions() as adding:
            await posts_repository.delete(deleting, post_id)  # holds the post's lock
            insert = asyncio.create_task(posts_repository.add(adding, [(post_id, new_id())]))
            await asyncio.sleep(0.3)
            assert not insert.done()  # waiting on the lock, not deciding on a stale snapshot
            await deleting.commit()
            assert await insert == set()
            await adding.commit()
        assert await sql(app, "SELECT count(*) FROM posts WHERE id = :id", id=post_id) == [(0,)]


class TestUserDeleted:
    async def test_an_account_takes_its_likes_views_and_comments_along(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver, post: Post
    ) -> None:
        gone, stays = new_id(), new_id()
        other = {"id": new_id(), "author_id": new_id()}
        await deliver(post_record("post_created", other["id"], other["author_id"]))
        for user in (gone, stays):
            for target in (post, other):
                await client.put(f"/posts/{target['id']}/likes/{user}")
                await client.post(f"/posts/{target['id']}/views", json={"user_id": user})
        thread = await comment(client, post["id"], gone, "Mine")
        await comment(client, post["id"], stays, "A reply", parent_id=thread["id"])
        await comment(client, post["id"], stays, "Top level")
        await deliver(user_record("user_deleted", gone, f"gone{gone}"))
        counters = await stats(client, [post["id"], other["id"]], stays)
        assert counters[str(post["id"])] == {
            "like_count": 1,
            "comment_count": 1,
            "view_count": 1,
            "liked_by_viewer": True,
        }
        assert counters[str(other["id"])] == {
            "like_count": 1,
            "comment_count": 0,
            "view_count": 1,
            "liked_by_viewer": True,
        }
        for table, column in (("likes", "user_id"), ("views", "user_id"), ("comments", "author_id")):
            assert await sql(app, f"SELECT count(*) FROM {table} WHERE {column} = :u", u=gone) == [(0,)]  # noqa: S608

    async def test_a_deleted_accounts_late_writes_are_refused_and_leave_nothing(
        self, client: httpx.AsyncClient, app: FastAPI, deliver: Deliver, post: Post
    ) -> None:
        """A like, view or comment that was on its way when the account went (the gateway had
        checked its token just before) arrives after `user_deleted` erased the account's activity."""
        gone = new_id()
        await deliver(user_record("user_deleted", gone, f"gone{gone}"))
        refused = {
            "like": await client.put(f"/posts/{post['id']}/likes/{gone}"),
            "view": await client.post(f"/posts/{post['id']}/views", json={"user_id": gone}),
            "comment": await client.post(f"/posts/{post['id']}/comments", json={"author_id": gone, "content": "late"}),
        }
        for name, response in refused.items():
            assert response.json() == {"status": 401, "message": "unauthenticated"}, name
        for table, column in (("likes", "user_id"), ("views", "user_id"), ("comments", "author_id")):
            assert await sql(app, f"SELECT count(*) FROM {table} WHERE {column} = :u", u=gone) == [(0,)]  # noqa: S608
        assert await events_of(app, post["id"]) == []
        assert (await stats(client, [post["id"]]))[str(post["id"])]["like_count"] == 0

    async def test_a_write_and_the_erasure_of_its_account_take_turns(
        self, client: httpx.AsyncClient, app: FastAPI, post: Post
    ) -> None:
        """The interleaving the lock exists for: the like's transaction is open when the account's
        erasure starts. The erasure waits for it, then removes the like too."""
        gone = new_id()
        sessions = app.state.sessionmaker
        async with sessions() as liking, sessions() as erasing:
            await ReactionService(liking, app.state.settings).like(post["id"], gone)
            erasure = asyncio.create_task(UserDirectory(erasing).forget(gone))
            await asyncio.sleep(0.3)
            assert not erasure.done()  # waiting on the user's lock, not erasing a stale snapshot
            await liking.commit()
            await erasure
            await erasing.commit()
        assert await sql(app, "SELECT count(*) FROM likes WHERE user_id = :u", u=gone) == [(0,)]
        assert (await stats(client, [post["id"]]))[str(post["id"])]["like_count"] == 0


class TestWorker:
    async def test_post_events_in_activity_events_out(
        self, service_settings: Callable[..., Settings], posts_url: str
    ) -> None:
        # a database of its own: the relay publishes every unsent row it finds
        settings = service_settings(Settings, database="activity_worker", posts_url=posts_url)
        post_id, author, fan = new_id(), new_id(), new_id()
        record = post_record("post_created", post_id, author)
        async with kafka_producer() as producer:
            await producer.send_and_wait(
                settings.topic("post-events"), record.value, key=record.key, headers=record.headers
            )
        # The reader is polling before the like, so the event is read whenever the relay sends it;
        # a wait that fails says whether the relay ever marked the row sent.
        async with (
            worker(settings, consumers(settings), relay="activity-test-relay") as engine,
            kafka_reader(settings.topic("activity-events")) as received,
        ):
            async with app_client(create_app(settings)) as client:

                async def liked() -> bool:
                    response = await client.put(f"/posts/{post_id}/likes/{fan}")
                    return response.status_code == 200

                await eventually(liked, timeout=30.0)

            async def like_created() -> Any:
                batches = await received.getmany(timeout_ms=500)
                return next((r for records in batches.values() for r in records), None)

            try:
                message = await eventually(like_created, timeout=30.0)
            except AssertionError as exc:
                async with engine.connect() as conn:
                    rows = (await conn.execute(text("SELECT id, topic, sent_at FROM outbox ORDER BY id"))).all()
                raise AssertionError(f"{exc}; outbox rows: {rows}; reader assignment: {received.assignment()}") from exc
            assert message.key == str(post_id).encode()
            assert dict(message.headers)["event_type"] == b"like_created"
            assert orjson.loads(message.value)["data"]["post_author_id"] == author
