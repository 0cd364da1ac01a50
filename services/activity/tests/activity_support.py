"""Helpers shared by the activity tests (a module of its own: every service has a `conftest`)."""

import itertools
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import orjson

Deliver = Callable[[SimpleNamespace], Awaitable[None]]

_counter = itertools.count(1)


def new_id() -> int:
    """Ids never clash between tests (or test workers) sharing a database."""
    return (uuid.uuid4().int >> 80) + next(_counter)


def _record(topic: str, kind: str, key: int, data: dict[str, Any]) -> SimpleNamespace:
    event_id = uuid.uuid4().hex
    value = orjson.dumps({"event_id": event_id, "type": kind, "version": 1, "aggregate_id": str(key), "data": data})
    headers = [("event_id", event_id.encode()), ("event_type", kind.encode())]
    return SimpleNamespace(topic=topic, key=str(key).encode(), value=value, headers=headers)


def post_record(kind: str, post_id: int, author_id: int, title: str = "A title") -> SimpleNamespace:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {"id": post_id, "author_id": author_id, "title": title, "created_at": now, "tags": []}
    return _record("post-events", kind, post_id, data)


def user_record(kind: str, user_id: int, username: str, updated_at: str | None = None) -> SimpleNamespace:
    now = updated_at or datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    data = {
        "id": user_id,
        "username": username,
        "email": f"{username}@example.com",
        "created_at": now,
        "updated_at": now,
    }
    return _record("user-events", kind, user_id, data)
