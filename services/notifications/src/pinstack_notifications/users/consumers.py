"""User events keep the recipients projection current; a deleted user's notifications go too."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import Handler
from pinstack_kit.user_projection import apply_user_events
from pinstack_notifications.notifications.service import NotificationService
from pinstack_notifications.users.service import UserDirectory


def user_event_handler() -> Handler:
    async def remove_notifications(session: AsyncSession, user_id: int) -> None:
        await NotificationService(session).remove_all_of(user_id)

    return apply_user_events(UserDirectory, cascade=remove_notifications)
