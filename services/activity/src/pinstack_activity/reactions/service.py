"""Likes (idempotent), views (once per user, post and window) and batch counters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.config import Settings
from pinstack_activity.errors import InvalidInput
from pinstack_activity.events import activity_event
from pinstack_activity.posts.service import PostDirectory
from pinstack_activity.reactions import repository
from pinstack_activity.reactions.schemas import MAX_STATS_IDS
from pinstack_activity.users.service import UserDirectory
from pinstack_contracts.events import LIKE_CREATED, LikeCreated
from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_contracts.topics import ACTIVITY_EVENTS
from pinstack_kit import cursors
from pinstack_kit.envelope import rfc3339, rfc3339_nano
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.outbox import enqueue_event
from pinstack_kit.validation import parse_int

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def parse_ids(text: str) -> list[int]:
    """`1,2,3` → distinct ids in order; anything else is a 400."""
    ids = [parse_int(part.strip()) for part in text.split(",")] if text else []
    if not ids or len(ids) > MAX_STATS_IDS or any(i is None or not ID_MIN <= i <= ID_MAX for i in ids):
        raise InvalidInput()
    return list(dict.fromkeys(i for i in ids if i is not None))


class ReactionService:
    def __init__(self, session: AsyncSession, settings: Settings, posts: ServiceClient | None = None) -> None:
        self.session = session
        self.settings = settings
        self.topic = settings.topic(ACTIVITY_EVENTS)
        self.posts = PostDirectory(session, settings, posts)

    async def _learnt(self, post_id: int) -> bool:
        """After a write found no post: True when the post was only missing from the projection
        and is known now (the write is worth a retry); raises `PostNotFound` when it does not exist."""
        if await repository.post(self.session, post_id) is not None:
            return False
        await self.posts.require(post_id)
        return True

    async def like(self, post_id: int, user_id: int) -> dict[str, Any]:
        await UserDirectory(self.session).require_alive(user_id)
        created_at = await repository.add_like(self.session, post_id, user_id)
        if created_at is None and await self._learnt(post_id):
            created_at = await repository.add_like(self.session, post_id, user_id)
        if created_at is None:  # liked already
            return {"liked": True, "like_count": await self._count(post_id, "like_count")}
        post = await repository.bump(self.session, post_id, "like_count", +1)
        like = LikeCreated(
            post_id=post_id, post_author_id=post.author_id, user_id=user_id, created_at=rfc3339(created_at)
        )
        event_id = f"{LIKE_CREATED}:{post_id}:{user_id}"  # a like redone later is not news twice
        await enqueue_event(self.session, self.topic, activity_event(like, event_id))
        return {"liked": True, "like_count": post.like_count}

    async def unlike(self, post_id: int, user_id: int) -> dict[str, Any]:
        if not await repository.remove_like(self.session, post_id, user_id):
            return {"liked": False, "like_count": await self._count(post_id, "like_count")}
        post = await repository.bump(self.session, post_id, "like_count", -1)
        return {"liked": False, "like_count": post.like_count}

    async def view(self, post_id: int, user_id: int, now: datetime | None = None) -> dict[str, Any]:
        window = self.settings.view_window_seconds
        elapsed = ((now or datetime.now(UTC)) - EPOCH) // timedelta(seconds=1)
        window_start = EPOCH + timedelta(seconds=elapsed - elapsed % window)
        await UserDirectory(self.session).require_alive(user_id)
        counted = await repository.add_view(self.session, post_id, user_id, window_start)
        if not counted and await self._learnt(post_id):
            counted = await repository.add_view(self.session, post_id, user_id, window_start)
        if not counted:
            return {"counted": False, "view_count": await self._count(post_id, "view_count")}
        post = await repository.bump(self.session, post_id, "view_count", +1)
        return {"counted": True, "view_count": post.view_count}

    async def likers(self, post_id: int, cursor: str | None, limit: int) -> dict[str, Any]:
        before = None
        if cursor:
            before = cursors.decode_time_cursor(cursor)
        if await repository.post(self.session, post_id) is None:
            await self.posts.require(post_id)
        rows = await repository.likers(self.session, post_id, before, limit + 1)
        page = rows[:limit]
        next_cursor = None
        if len(rows) > limit:
            last = page[-1]
            next_cursor = cursors.time_cursor(last.created_at, last.user_id)
        return {
            "likes": [{"user_id": row.user_id, "created_at": rfc3339_nano(row.created_at)} for row in page],
            "next_cursor": next_cursor,
        }

    async def stats(self, ids_text: str, viewer_id: int) -> dict[str, Any]:
        post_ids = parse_ids(ids_text)
        found = {row.id: row for row in await repository.stats(self.session, post_ids, viewer_id)}
        result: dict[str, Any] = {}
        for post_id in post_ids:
            row = found.get(post_id)
            result[str(post_id)] = {
                "like_count": row.like_count if row else 0,
                "comment_count": row.comment_count if row else 0,
                "view_count": row.view_count if row else 0,
                "liked_by_viewer": bool(row.liked) if row else False,
            }
        return result

    async def _count(self, post_id: int, counter: str) -> int:
        post = await repository.post(self.session, post_id)
        if post is None:
            await self.posts.require(post_id)  # raises unless only the projection lagged behind
            return 0
        return int(getattr(post, counter))
