"""User events keep the recipients projection current; a deleted user's notifications go too."""

from __future__ import annotations

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import header
from pinstack_notifications.events import USER_CREATED, USER_DELETED, USER_UPDATED
from pinstack_notifications.notifications.service import NotificationService
from pinstack_notifications.users.service import Recipients


async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
    kind = header(record, "event_type")
    if kind not in (USER_CREATED, USER_UPDATED, USER_DELETED):
        return
    user_id = int(orjson.loads(record.value)["data"]["id"])
    recipients = Recipients(session, users=None)
    if kind == USER_DELETED:
        # Tombstone first: it waits for notifications in flight that share-locked the user, so
        # the delete below sees them too.
        await recipients.forget(user_id)
        await NotificationService(session).remove_all_of(user_id)
    else:
        await recipients.remember(user_id)
