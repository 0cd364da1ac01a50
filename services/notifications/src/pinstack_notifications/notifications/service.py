"""Notifications of a user: send, feed, counts, and owner-only reads and changes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import FOLLOW_CREATED, FollowCreated
from pinstack_kit import cursors
from pinstack_kit.envelope import rfc3339_nano
from pinstack_kit.errors import Unauthorized
from pinstack_kit.http_client import ServiceClient
from pinstack_notifications.errors import NotificationAccessDenied, NotificationNotFound
from pinstack_notifications.notifications import repository
from pinstack_notifications.users.service import UserDirectory


def to_wire(row: Row) -> dict[str, Any]:
    """The contract's notification: nanosecond RFC 3339 time, payload omitted when absent."""
    notification: dict[str, Any] = {
        "id": row.id,
        "user_id": row.user_id,
        "type": row.type,
        "is_read": row.is_read,
        "created_at": rfc3339_nano(row.created_at),
    }
    if row.payload is not None:
        notification["payload"] = row.payload
    return notification


def _owned(row: Row | None, user_id: int) -> Row:
    if row is None:
        raise NotificationNotFound()
    if row.user_id != user_id:
        raise NotificationAccessDenied()
    return row


class NotificationService:
    def __init__(self, session: AsyncSession, users: ServiceClient | None = None) -> None:
        self.session = session
        self.directory = UserDirectory(session, users)

    async def send(self, user_id: int, kind: str, payload: Any, *, sender_id: int | None = None) -> int:
        """A deleted account sends nothing, even a request already on its way when it went: the
        sender's projection row stays share-locked until commit (see UserDirectory.alive)."""
        if sender_id is not None and not await self.directory.alive(sender_id, lock=True):
            raise Unauthorized()  # what the account's token answers at the gateway
        await self.directory.require(user_id, lock=True)
        return await repository.insert_notification(self.session, user_id, kind, payload)

    async def notify_follow(self, follow: FollowCreated) -> None:
        """The followee learns about a new follower; the payload is the message value (contract §2.6)."""
        await self.notify_activity(follow.followee_id, follow.follower_id, FOLLOW_CREATED, follow.model_dump())

    async def notify_activity(self, recipient_id: int, actor_id: int, kind: str, payload: dict[str, Any]) -> None:
        """`recipient_id` learns what `actor_id` did; nobody hears of their own action, and when
        either is deleted (an event still in flight) nobody hears of it at all. The emitting
        service vouches for both; their projection rows stay share-locked until commit, so a
        concurrent deletion waits and then removes this notification too."""
        if recipient_id == actor_id:
            return
        known = await repository.notify_known(self.session, recipient_id, kind, payload, actor_id)
        if known.ends < 2 and await self.directory.alive(actor_id, recipient_id, lock=True):
            await repository.insert_notification(self.session, recipient_id, kind, payload, actor_id)

    async def remove_all_of(self, user_id: int) -> int:
        return await repository.delete_all_of(self.session, user_id)

    async def feed(self, user_id: int, page: int, limit: int, cursor: str = "") -> tuple[dict[str, Any], str | None]:
        """A page and the cursor of the next one. With a cursor `page` is only echoed."""
        after = cursors.decode_time_cursor(cursor) if cursor else None
        offset = 0 if after else (page - 1) * limit
        rows, total = await repository.feed(self.session, user_id, offset, limit + 1, after)
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = cursors.time_cursor(rows[-1].created_at, rows[-1].id) if more else None
        page_data = {
            "notifications": [to_wire(r) for r in rows],
            "total": total,
            "page": page,
            "limit": limit,
            "total_pages": -(-total // limit),
        }
        return page_data, next_cursor

    async def unread_count(self, user_id: int) -> int:
        return await repository.unread_count(self.session, user_id)

    async def read_all(self, user_id: int) -> int:
        return await repository.mark_all_read(self.session, user_id)

    async def get(self, notification_id: int, user_id: int) -> dict[str, Any]:
        return to_wire(_owned(await repository.get(self.session, notification_id), user_id))

    async def read(self, notification_id: int, user_id: int) -> bool:
        """Mark read; answers whether it already was (the gateway words its answer on it)."""
        row = _owned(await repository.mark_read(self.session, notification_id, user_id), user_id)
        return not row.changed

    async def delete(self, notification_id: int, user_id: int) -> None:
        row = _owned(await repository.delete(self.session, notification_id, user_id), user_id)
        if not row.changed:  # a concurrent delete got there first
            raise NotificationNotFound()
