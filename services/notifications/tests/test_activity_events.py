"""Activity events (likes, comments, replies, mentions) become notifications for the user they
concern: never for one's own action, exactly once per event id, unknown types ignored."""

import uuid
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
from notifications_support import Seed, new_id, produce
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_contracts.events import Event
from pinstack_kit.db import sessionmaker
from pinstack_notifications.config import Settings
from pinstack_notifications.worker import by_topic, consumers
from pinstack_testing import Start, eventually, handle_record, start_consumers

pytestmark = pytest.mark.integration

NOW = "2026-01-02T03:04:05.123456789Z"


def activity(kind: str, post_id: int, data: dict[str, Any], event_id: str | None = None) -> Event:
    """An event exactly as the activity service enqueues it (key: the post)."""
    return Event(event_id=event_id or f"{kind}:{uuid.uuid4().hex}", type=kind, aggregate_id=str(post_id), data=data)


def like(post_id: int, author: int, user: int, event_id: str | None = None) -> Event:
    data = {"post_id": post_id, "post_author_id": author, "user_id": user, "created_at": NOW}
    return activity("like_created", post_id, data, event_id)


def comment(post_id: int, author: int, commenter: int, parent: tuple[int, int] | None = None) -> Event:
    comment_id = new_id()
    data = {
        "comment_id": comment_id,
        "post_id": post_id,
        "post_author_id": author,
        "author_id": commenter,
        "parent_id": parent[0] if parent else None,
        "parent_author_id": parent[1] if parent else None,
        "content": "nice",
        "created_at": NOW,
    }
    return activity("comment_created", post_id, data, f"comment_created:{comment_id}")


def mention(post_id: int, mentioned: int, author: int, comment_id: int | None) -> Event:
    data = {
        "mentioned_user_id": mentioned,
        "author_id": author,
        "post_id": post_id,
        "comment_id": comment_id,
        "source": "post" if comment_id is None else "comment",
        "created_at": NOW,
    }
    return activity("mention_created", post_id, data)


def as_record(topic: str, event: Event, event_type: str | None = None) -> SimpleNamespace:
    headers = event.headers()
    if event_type is not None:
        headers["event_type"] = event_type
    return SimpleNamespace(
        topic=topic,
        key=event.aggregate_id.encode(),
        value=event.model_dump_json().encode(),
        headers=[(k, v.encode()) for k, v in headers.items()],
    )


def as_produced(event: Event) -> tuple[bytes, bytes, dict[str, str]]:
    return event.aggregate_id.encode(), event.model_dump_json().encode(), event.headers()


Deliver = Callable[..., Any]


@pytest.fixture
def deliver(settings: Settings, engine: AsyncEngine) -> Deliver:
    """Hand an activity event to the worker's handler in its own transaction, as the runner does."""
    handle = by_topic(settings)
    sessions = sessionmaker(engine)

    async def run(event: Event, event_type: str | None = None) -> None:
        await handle_record(sessions, as_record(settings.topic("activity-events"), event, event_type), handle)

    return run


async def stored(engine: AsyncEngine, user_id: int) -> list[tuple[str, Any]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT type, payload FROM notifications WHERE user_id = :u ORDER BY id"), {"u": user_id}
        )
        return [(row.type, row.payload) for row in result]


class TestActivityNotifications:
    async def test_a_like_notifies_the_post_author(self, engine: AsyncEngine, deliver: Deliver, seed: Seed) -> None:
        author, fan = await seed(2)
        post = new_id()
        await deliver(like(post, author, fan))
        assert await stored(engine, author) == [("like", {"post_id": post, "user_id": fan})]
        assert await stored(engine, fan) == []

    async def test_a_comment_notifies_the_post_author(self, engine: AsyncEngine, deliver: Deliver, seed: Seed) -> None:
        author, commenter = await seed(2)
        post = new_id()
        event = comment(post, author, commenter)
        await deliver(event)
        payload = {"post_id": post, "comment_id": event.data["comment_id"], "author_id": commenter}
        assert await stored(engine, author) == [("comment", payload)]
        assert await stored(engine, commenter) == []

    async def test_a_reply_also_notifies_the_parent_author(
        self, engine: AsyncEngine, deliver: Deliver, seed: Seed
    ) -> None:
        author, parent_author, replier = await seed(3)
        post = new_id()
        event = comment(post, author, replier, parent=(new_id(), parent_author))
        await deliver(event)
        payload = {"post_id": post, "comment_id": event.data["comment_id"], "author_id": replier}
        assert await stored(engine, author) == [("comment", payload)]
        assert await stored(engine, parent_author) == [("comment_reply", payload)]
        assert await stored(engine, replier) == []

    async def test_a_reply_to_the_post_author_notifies_them_once(
        self, engine: AsyncEngine, deliver: Deliver, seed: Seed
    ) -> None:
        author, replier = await seed(2)
        event = comment(new_id(), author, replier, parent=(new_id(), author))
        await deliver(event)
        assert [kind for kind, _ in await stored(engine, author)] == ["comment"]

    async def test_a_mention_notifies_the_mentioned_user(
        self, engine: AsyncEngine, deliver: Deliver, seed: Seed
    ) -> None:
        author, mentioned = await seed(2)
        post, comment_id = new_id(), new_id()
        await deliver(mention(post, mentioned, author, None))
        await deliver(mention(post, mentioned, author, comment_id))
        assert await stored(engine, mentioned) == [
            ("mention", {"post_id": post, "comment_id": None, "author_id": author, "source": "post"}),
            ("mention", {"post_id": post, "comment_id": comment_id, "author_id": author, "source": "comment"}),
        ]
        assert await stored(engine, author) == []

    async def test_nobody_is_notified_of_their_own_action(
        self, engine: AsyncEngine, deliver: Deliver, seed: Seed
    ) -> None:
        me, other = await seed(2)
        post = new_id()
        await deliver(like(post, me, me))
        await deliver(comment(post, me, me))
        await deliver(mention(post, me, me, None))
        own_reply = comment(post, other, me, parent=(new_id(), me))  # replying to my own comment
        await deliver(own_reply)
        assert await stored(engine, me) == []
        assert [kind for kind, _ in await stored(engine, other)] == ["comment"]

    async def test_an_unknown_event_type_is_ignored(self, engine: AsyncEngine, deliver: Deliver, seed: Seed) -> None:
        author, fan = await seed(2)
        await deliver(like(new_id(), author, fan), event_type="like_deleted")
        await deliver(like(new_id(), author, fan), event_type="something_new")
        assert await stored(engine, author) == []

    async def test_a_deleted_recipient_gets_nothing(self, engine: AsyncEngine, deliver: Deliver, seed: Seed) -> None:
        gone, fan = await seed(2)
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE users SET deleted_at = now() WHERE id = :u"), {"u": gone})
        await deliver(like(new_id(), gone, fan))
        assert await stored(engine, gone) == []


class TestDeletedActor:
    async def test_what_a_deleted_user_caused_goes_with_the_account(
        self, engine: AsyncEngine, settings: Settings, deliver: Deliver, seed: Seed
    ) -> None:
        author, gone, fan = await seed(3)
        post = new_id()
        for event in (like(post, author, gone), comment(post, author, gone), like(post, author, fan)):
            await deliver(event)
        await deliver_user_deleted(settings, engine, gone)
        assert [payload["user_id"] for _, payload in await stored(engine, author)] == [fan]
        await deliver(like(new_id(), author, gone))  # still in flight when the account went
        assert len(await stored(engine, author)) == 1


async def deliver_user_deleted(settings: Settings, engine: AsyncEngine, user_id: int) -> None:
    event = Event(event_id=uuid.uuid4().hex, type="user_deleted", aggregate_id=str(user_id), data={"id": user_id})
    async with sessionmaker(engine)() as session, session.begin():
        await by_topic(settings)(session, as_record(settings.topic("user-events"), event))


class TestActivityEventsOnKafka:
    async def test_the_same_event_delivered_twice_notifies_once(
        self, engine: AsyncEngine, settings: Settings, start: Start, seed: Seed
    ) -> None:
        author, fan = await seed(2)
        post = new_id()
        first = like(post, author, fan, event_id=f"like_created:{post}:{fan}")
        # a like undone and redone: a new envelope, but the same deterministic event id
        redone = like(post, author, fan, event_id=f"like_created:{post}:{fan}")
        other_fan = new_id()
        sentinel = like(post, author, other_fan)  # same key, same partition, after the copies
        await produce(settings.topic("activity-events"), [as_produced(e) for e in (first, first, redone, sentinel)])
        start_consumers(start, consumers(settings), engine)

        async def sentinel_in() -> bool:
            return any(p["user_id"] == other_fan for _, p in await stored(engine, author))

        await eventually(sentinel_in, timeout=30)
        assert await stored(engine, author) == [
            ("like", {"post_id": post, "user_id": fan}),
            ("like", {"post_id": post, "user_id": other_fan}),
        ]
