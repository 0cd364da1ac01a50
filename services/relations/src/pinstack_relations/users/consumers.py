"""User events keep the projection current; a deleted user takes their follows along."""

from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import Handler, header
from pinstack_relations.config import Settings
from pinstack_relations.events import USER_CREATED, USER_DELETED, USER_UPDATED
from pinstack_relations.follows.service import FollowService
from pinstack_relations.users.service import UserDirectory


def user_events_handler(settings: Settings) -> Handler:
    async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
        kind = header(record, "event_type")
        if kind not in (USER_CREATED, USER_UPDATED, USER_DELETED):
            return
        data = orjson.loads(record.value)["data"]
        directory = UserDirectory(session, users=None)
        if kind == USER_DELETED:
            # Tombstone first: it waits for follows in flight that share-locked the user, so the
            # delete below sees them too.
            await directory.forget(int(data["id"]))
            await FollowService(session, settings).remove_all_of(int(data["id"]))
        else:
            await directory.remember(data)

    return on_user_event
