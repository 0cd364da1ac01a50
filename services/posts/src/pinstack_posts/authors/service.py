"""The author projection: profiles copied from the users service, read together with posts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.http_client import ServiceClient
from pinstack_posts.authors import repository
from pinstack_posts.errors import UserNotFound


def profile(user: dict[str, Any]) -> dict[str, Any]:
    """Projection row from the users service's public user object (absent optional = null)."""
    return {
        "id": int(user["id"]),
        "username": user["username"],
        "email": user["email"],
        "full_name": user.get("full_name"),
        "bio": user.get("bio"),
        "avatar_url": user.get("avatar_url"),
        "updated_at": datetime.fromisoformat(user["updated_at"]),
    }


class AuthorService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def ensure(self, author_id: int, users: ServiceClient) -> Row:
        """The author of a new post. The `user_created` event may still be on its way: then the
        profile is fetched once from the users service, which also tells a user that does not exist."""
        row = await repository.get_for_post(self.session, author_id)
        if row is not None:
            return row
        user = await users.find(f"/users/{author_id}")
        if user is None:
            raise UserNotFound()
        await repository.upsert(self.session, profile(user))
        row = await repository.get_for_post(self.session, author_id)
        if row is None:  # deleted by a `user_deleted` that committed in between
            raise UserNotFound()
        return row

    async def apply(self, user: dict[str, Any]) -> bool:
        """Store a profile from a user event; True when the projection changed."""
        return await repository.upsert(self.session, profile(user))

    async def remove(self, author_id: int) -> None:
        await repository.delete(self.session, author_id)
