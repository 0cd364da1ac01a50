"""Sessions end with their user: a deleted account's refresh tokens stop working."""

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_auth.sessions import repository
from pinstack_contracts.events import USER_DELETED, UserDeleted
from pinstack_kit.consumer import payload


async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
    deleted = payload(record, UserDeleted)
    if deleted is not None:
        await repository.revoke_user(session, deleted.id, USER_DELETED)
