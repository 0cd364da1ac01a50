"""Which users exist, from the projection of user events, with the users service as fallback.

Events can lag behind a fresh registration, so an id the projection has not seen yet is looked
up once in the users service and remembered. A deleted user is a tombstone: never looked up
again, never brought back by a lookup that raced with the deletion.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.http_client import ServiceClient
from pinstack_relations.errors import UserNotFound
from pinstack_relations.users import repository


class UserDirectory:
    def __init__(self, session: AsyncSession, users: ServiceClient | None) -> None:
        self.session = session
        self.users = users

    async def require(self, *user_ids: int, lock: bool = False) -> None:
        """Raise `UserNotFound` unless every id is a live user (share-locked with `lock`)."""
        ids = list(dict.fromkeys(user_ids))
        alive = await repository.known(self.session, ids, lock=lock)
        unseen = [i for i in ids if i not in alive]
        if not all(alive.values()) or (unseen and self.users is None):
            raise UserNotFound()
        if not unseen:
            return
        for user_id in unseen:
            user = await self._fetch(user_id)
            await repository.add_if_absent(self.session, user_id, user["username"], user.get("avatar_url"))
        # Read again: a deletion may have won the race since the lookup.
        if not all((await repository.known(self.session, unseen, lock=lock)).values()):
            raise UserNotFound()

    async def _fetch(self, user_id: int) -> dict[str, Any]:
        assert self.users is not None
        user: dict[str, Any] | None = await self.users.find(f"/users/{user_id}")
        if user is None:
            raise UserNotFound()
        return user

    async def remember(self, user: dict[str, Any]) -> None:
        await repository.upsert(self.session, int(user["id"]), str(user["username"]), user.get("avatar_url"))

    async def forget(self, user_id: int) -> None:
        await repository.tombstone(self.session, user_id)
