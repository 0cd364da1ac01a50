"""User events keep the projection current; a deleted user takes their follows along."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import Handler
from pinstack_kit.user_projection import apply_user_events
from pinstack_relations.config import Settings
from pinstack_relations.follows.service import FollowService
from pinstack_relations.users.service import UserDirectory


def user_event_handler(settings: Settings) -> Handler:
    async def remove_follows(session: AsyncSession, user_id: int) -> None:
        await FollowService(session, settings).remove_all_of(user_id)

    return apply_user_events(UserDirectory, cascade=remove_follows)
