"""`user-events` keep the user projection (usernames for @mentions) current."""

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.events import USER_CREATED, USER_DELETED, USER_UPDATED
from pinstack_activity.users.service import UserDirectory
from pinstack_kit.consumer import Handler, header


def user_event_handler() -> Handler:
    async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
        kind = header(record, "event_type")
        if kind not in (USER_CREATED, USER_UPDATED, USER_DELETED):
            return
        user = orjson.loads(record.value)["data"]
        directory = UserDirectory(session)
        if kind == USER_DELETED:
            await directory.forget(int(user["id"]))
        else:
            await directory.remember(user)

    return on_user_event
