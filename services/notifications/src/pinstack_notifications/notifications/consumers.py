"""Relation and activity events become notifications: a new follower is announced to the
followee; a like, a comment, a reply or a mention to the user it concerns. User events keep the
recipients projection current, and a deleted user's notifications go with them."""

from __future__ import annotations

from typing import Any

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import Handler, header
from pinstack_kit.user_projection import apply_user_events
from pinstack_notifications.events import (
    COMMENT,
    COMMENT_CREATED,
    COMMENT_REPLY,
    FOLLOW_CREATED,
    LIKE,
    LIKE_CREATED,
    MENTION,
    MENTION_CREATED,
)
from pinstack_notifications.notifications.service import NotificationService
from pinstack_notifications.users.service import UserDirectory


async def on_relation_event(session: AsyncSession, record: ConsumerRecord) -> None:
    # Dispatch on the header like upstream; other types (follow_deleted) announce nothing.
    if header(record, "event_type") != FOLLOW_CREATED:
        return
    event = orjson.loads(record.value)
    await NotificationService(session).notify_follow(int(event["followee_id"]), event)


async def _like(service: NotificationService, data: dict[str, Any]) -> None:
    actor = int(data["user_id"])
    payload = {"post_id": data["post_id"], "user_id": actor}
    await service.notify_activity(int(data["post_author_id"]), actor, LIKE, payload)


async def _comment(service: NotificationService, data: dict[str, Any]) -> None:
    actor = int(data["author_id"])
    payload = {"post_id": data["post_id"], "comment_id": data["comment_id"], "author_id": actor}
    post_author = int(data["post_author_id"])
    await service.notify_activity(post_author, actor, COMMENT, payload)
    parent_author = data.get("parent_author_id")
    if parent_author is not None and int(parent_author) != post_author:
        await service.notify_activity(int(parent_author), actor, COMMENT_REPLY, payload)


async def _mention(service: NotificationService, data: dict[str, Any]) -> None:
    actor = int(data["author_id"])
    payload = {
        "post_id": data["post_id"],
        "comment_id": data.get("comment_id"),
        "author_id": actor,
        "source": data["source"],
    }
    await service.notify_activity(int(data["mentioned_user_id"]), actor, MENTION, payload)


ACTIVITY_HANDLERS = {LIKE_CREATED: _like, COMMENT_CREATED: _comment, MENTION_CREATED: _mention}


async def on_activity_event(session: AsyncSession, record: ConsumerRecord) -> None:
    """Kit envelopes keyed by post; the type is in the `event_type` header, unknown ones are ignored.
    Exactly once comes from the runner's dedupe by the (deterministic) `event_id` header."""
    handle = ACTIVITY_HANDLERS.get(header(record, "event_type") or "")
    if handle is None:
        return
    event = orjson.loads(record.value)
    await handle(NotificationService(session), event["data"])


def user_event_handler() -> Handler:
    async def remove_notifications(session: AsyncSession, user_id: int) -> None:
        await NotificationService(session).remove_all_of(user_id)

    return apply_user_events(UserDirectory, cascade=remove_notifications)
