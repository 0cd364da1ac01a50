"""Follow and unfollow with their events in the same transaction; follower and followee lists."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import Follow, FollowCreated, FollowDeleted
from pinstack_contracts.topics import RELATION_EVENTS
from pinstack_kit import cursors
from pinstack_kit.envelope import rfc3339_nano
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.outbox import enqueue
from pinstack_relations.config import Settings
from pinstack_relations.errors import AlreadyFollowing, CannotFollowYourself, CannotUnfollowYourself, FollowNotFound
from pinstack_relations.events import relation_message
from pinstack_relations.follows import repository
from pinstack_relations.users.service import UserDirectory


def to_wire(row: Row) -> dict[str, Any]:
    """The contract's relation user: `avatar_url` omitted when null."""
    user: dict[str, Any] = {"id": row.id, "username": row.username}
    if row.avatar_url is not None:
        user["avatar_url"] = row.avatar_url
    return user


class FollowService:
    def __init__(self, session: AsyncSession, settings: Settings, users: ServiceClient | None = None) -> None:
        self.session = session
        self.topic = settings.topic(RELATION_EVENTS)
        self.directory = UserDirectory(session, users)

    async def _emit(self, kind: type[Follow], follower_id: int, followee_id: int, at: datetime) -> None:
        message = relation_message(kind, follower_id, followee_id, at)
        await enqueue(self.session, self.topic, message.key, message.value, message.headers)

    async def follow(self, follower_id: int, followee_id: int) -> dict[str, Any]:
        if follower_id == followee_id:
            raise CannotFollowYourself()
        # Both ends must exist (the follower may be a deleted account with a live token); the
        # share lock makes a concurrent deletion wait and then remove this follow as well.
        known = await repository.follow_known(self.session, follower_id, followee_id)
        created_at = known.created_at
        if known.ends < 2:  # not both in the projection, or a tombstone: the full check decides
            await self.directory.require(followee_id, follower_id, lock=True)
            row = await repository.insert_follow(self.session, follower_id, followee_id)
            created_at = row.created_at if row is not None else None
        if created_at is None:
            raise AlreadyFollowing()
        await self._emit(FollowCreated, follower_id, followee_id, created_at)
        return {"follower_id": follower_id, "followee_id": followee_id, "created_at": rfc3339_nano(created_at)}

    async def unfollow(self, follower_id: int, followee_id: int) -> None:
        if follower_id == followee_id:
            raise CannotUnfollowYourself()
        row = await repository.delete_follow(self.session, follower_id, followee_id)
        if row is None:
            raise FollowNotFound()
        await self._emit(FollowDeleted, follower_id, followee_id, row.removed_at)

    async def remove_all_of(self, user_id: int) -> int:
        """Every follow from or to a deleted user, each with its `follow_deleted` event."""
        rows = await repository.delete_all_of(self.session, user_id)
        for row in rows:
            await self._emit(FollowDeleted, row.follower_id, row.followee_id, row.removed_at)
        return len(rows)

    async def related(
        self, user_id: int, *, followers: bool, page: int, limit: int, cursor: str = ""
    ) -> tuple[dict[str, Any], str | None]:
        """A page and the cursor of the next one. With a cursor `page` is only echoed."""
        after = cursors.decode_time_cursor(cursor) if cursor else None
        await self.directory.require(user_id)
        offset = 0 if after else (page - 1) * limit
        rows, total = await repository.list_related(
            self.session, user_id, followers=followers, offset=offset, limit=limit + 1, after=after
        )
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = cursors.time_cursor(rows[-1].followed_at, rows[-1].follow_id) if more else None
        key = "followers" if followers else "followees"
        return {key: [to_wire(r) for r in rows], "total": total, "page": page, "limit": limit}, next_cursor
