"""Relation events become notifications: a new follower is announced to the followee."""

from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import header
from pinstack_notifications.events import FOLLOW_CREATED
from pinstack_notifications.notifications.service import NotificationService


async def on_relation_event(session: AsyncSession, record: ConsumerRecord) -> None:
    # Dispatch on the header like upstream; other types (follow_deleted) announce nothing.
    if header(record, "event_type") != FOLLOW_CREATED:
        return
    event = orjson.loads(record.value)
    await NotificationService(session).notify_follow(int(event["followee_id"]), event)
