"""Sessions end with their user: a deleted account's refresh tokens stop working."""

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_auth.events import USER_DELETED
from pinstack_auth.sessions import repository
from pinstack_kit.consumer import header


async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
    if header(record, "event_type") != USER_DELETED:
        return
    event = orjson.loads(record.value)
    await repository.revoke_user(session, int(event["data"]["id"]), "user_deleted")
