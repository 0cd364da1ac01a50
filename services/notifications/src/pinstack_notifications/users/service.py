"""Who can receive notifications: the projection of user events, with the users service as a
fallback for registrations whose event has not arrived yet. Deleted users are tombstones."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.http_client import ServiceClient
from pinstack_notifications.errors import UserNotFound
from pinstack_notifications.users import repository


class Recipients:
    def __init__(self, session: AsyncSession, users: ServiceClient | None) -> None:
        self.session = session
        self.users = users

    async def accept(self, user_id: int) -> bool:
        """Whether `user_id` is a live user; the row stays share-locked until commit, so a
        concurrent deletion waits and then removes what this transaction wrote."""
        alive = await repository.known(self.session, user_id, lock=True)
        if alive is None:
            if self.users is not None and await self.users.find(f"/users/{user_id}") is None:
                return False
            # Without a users client the caller vouches for the user (a follow event: the
            # relations service checked the followee).
            await repository.add_if_absent(self.session, user_id)
            alive = await repository.known(self.session, user_id, lock=True)
        return bool(alive)

    async def require(self, user_id: int) -> None:
        if not await self.accept(user_id):
            raise UserNotFound()

    async def remember(self, user_id: int) -> None:
        await repository.add_if_absent(self.session, user_id)

    async def forget(self, user_id: int) -> None:
        await repository.tombstone(self.session, user_id)
