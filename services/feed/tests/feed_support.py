"""Helpers shared by the feed tests (a module of its own: every service has a `conftest`)."""

import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson

from pinstack_kit.envelope import rfc3339, rfc3339_nano

Deliver = Callable[[SimpleNamespace], Awaitable[None]]
DeliverBatch = Callable[[list[SimpleNamespace]], Awaitable[None]]

_counter = itertools.count(1)
BASE = datetime(2025, 1, 1, tzinfo=UTC)


def new_id() -> int:
    """Ids never clash between tests (or test workers) sharing a database."""
    return (uuid.uuid4().int >> 80) + next(_counter)


def at(seconds: int) -> datetime:
    return BASE + timedelta(seconds=seconds)


def post_event(kind: str, post_id: int, author_id: int, created_at: datetime | None = None) -> SimpleNamespace:
    data: dict[str, Any] = {"id": post_id, "author_id": author_id}
    if kind != "post_deleted":
        data |= {"title": "t", "created_at": rfc3339(created_at or datetime.now(UTC)), "tags": []}
    event_id = uuid.uuid4().hex
    value = orjson.dumps({"event_id": event_id, "type": kind, "version": 1, "aggregate_id": str(post_id), "data": data})
    headers = [("event_id", event_id.encode()), ("event_type", kind.encode())]
    return SimpleNamespace(topic="post-events", key=str(post_id).encode(), value=value, headers=headers)


def follow_event(kind: str, follower_id: int, followee_id: int) -> SimpleNamespace:
    value = {"followee_id": followee_id, "follower_id": follower_id, "timestamptz": rfc3339_nano(datetime.now(UTC))}
    headers = [("event_id", uuid.uuid4().hex.encode()), ("event_type", kind.encode())]
    return SimpleNamespace(
        topic="relation-events", key=str(follower_id).encode(), value=orjson.dumps(value), headers=headers
    )
