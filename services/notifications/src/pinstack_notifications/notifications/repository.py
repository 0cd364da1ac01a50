"""All SQL of notifications. Owner checks live in the statement that reads or changes the row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, exists, func, insert, select, text, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_notifications.models import Notification
from pinstack_notifications.users.service import UserDirectory

notifications = Notification.__table__  # type: ignore[attr-defined]
c = notifications.c

WIRE = (c.id, c.user_id, c.type, c.is_read, c.created_at, c.payload)


async def insert_notification(
    session: AsyncSession, user_id: int, kind: str, payload: Any, actor_id: int | None = None
) -> int:
    stmt = insert(notifications).values(user_id=user_id, type=kind, payload=payload, actor_id=actor_id).returning(c.id)
    return int((await session.execute(stmt)).scalar_one())


# A notification from `:actor_id` to `:user_id`, when both are live users of the projection (kit
# `insert_when_live`): a deletion waits for it and then removes it too.
_NOTIFY_KNOWN = text(
    UserDirectory.insert_when_live(
        ("actor_id", "user_id"),
        into="notifications (user_id, type, payload, actor_id)",
        values=":user_id, :type, :payload, :actor_id",
        returning="id",
    )
).bindparams(bindparam("payload", type_=c.payload.type))


async def notify_known(session: AsyncSession, user_id: int, kind: str, payload: Any, actor_id: int) -> Row:
    """`ends` (how many of the two are known live users) and the new notification's `id` (None
    unless `ends` is 2)."""
    params = {"user_id": user_id, "type": kind, "payload": payload, "actor_id": actor_id}
    return (await session.execute(_NOTIFY_KNOWN, params)).one()


async def get(session: AsyncSession, notification_id: int) -> Row | None:
    return (await session.execute(select(*WIRE).where(c.id == notification_id))).first()


async def feed(
    session: AsyncSession, user_id: int, offset: int, limit: int, after: tuple[datetime, int] | None = None
) -> tuple[list[Row], int]:
    """Newest first, and how many there are in all; with `after` (keyset paging: created_at and
    id), only the notifications strictly older than that."""
    keyset = [tuple_(c.created_at, c.id) < tuple_(*after)] if after is not None else []
    total_col = func.count().over().label("total")
    stmt = (
        select(*WIRE, total_col)
        .where(c.user_id == user_id, *keyset)
        .order_by(c.created_at.desc(), c.id.desc())
        .offset(offset)
        .limit(limit)
    )
    rows = list((await session.execute(stmt)).all())
    if rows and after is None:
        return rows, int(rows[0].total)  # the window counted every notification, not only this page
    if offset == 0 and after is None:
        return [], 0
    total = await session.scalar(select(func.count()).select_from(notifications).where(c.user_id == user_id))
    return rows, int(total or 0)


async def unread_count(session: AsyncSession, user_id: int) -> int:
    stmt = select(func.count()).select_from(notifications).where(c.user_id == user_id, ~c.is_read)
    return int(await session.scalar(stmt) or 0)


async def mark_all_read(session: AsyncSession, user_id: int) -> int:
    stmt = update(notifications).where(c.user_id == user_id, ~c.is_read).values(is_read=True)
    return int((await session.execute(stmt)).rowcount)  # type: ignore[attr-defined]


async def mark_read(session: AsyncSession, notification_id: int, user_id: int) -> Row | None:
    """One statement: the owner of the notification (None if there is none) and whether this
    call marked it. The UPDATE itself carries the owner check, so nobody marks another's row."""
    marked = (
        update(notifications)
        .where(c.id == notification_id, c.user_id == user_id, ~c.is_read)
        .values(is_read=True)
        .returning(c.id)
        .cte("marked")
    )
    stmt = select(c.user_id, exists(select(marked.c.id)).label("changed")).where(c.id == notification_id)
    return (await session.execute(stmt.add_cte(marked))).first()


async def delete(session: AsyncSession, notification_id: int, user_id: int) -> Row | None:
    """One statement: the owner of the notification (None if there is none) and whether this
    call deleted it. The DELETE itself carries the owner check."""
    removed = notifications.delete().where(c.id == notification_id, c.user_id == user_id).returning(c.id).cte("removed")
    stmt = select(c.user_id, exists(select(removed.c.id)).label("changed")).where(c.id == notification_id)
    return (await session.execute(stmt.add_cte(removed))).first()


async def delete_all_of(session: AsyncSession, user_id: int) -> int:
    """What the user received and what the user caused in other feeds."""
    result = await session.execute(notifications.delete().where((c.user_id == user_id) | (c.actor_id == user_id)))
    return int(result.rowcount)  # type: ignore[attr-defined]
