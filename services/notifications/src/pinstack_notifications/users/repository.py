"""All SQL of the users projection."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_notifications.models import User

users = User.__table__  # type: ignore[attr-defined]
c = users.c


async def known(session: AsyncSession, user_id: int, *, lock: bool) -> bool | None:
    """None when the projection has not seen the user, else whether they are alive.

    With `lock`, the row is share-locked until commit: a concurrent deletion waits for this
    transaction, then sees (and removes) what it wrote.
    """
    stmt = select(c.deleted_at).where(c.id == user_id)
    if lock:
        stmt = stmt.with_for_update(read=True)
    row = (await session.execute(stmt)).first()
    return None if row is None else row.deleted_at is None


async def add_if_absent(session: AsyncSession, user_id: int) -> None:
    await session.execute(insert(users).values(id=user_id).on_conflict_do_nothing(index_elements=[c.id]))


async def tombstone(session: AsyncSession, user_id: int) -> None:
    stmt = insert(users).values(id=user_id, deleted_at=func.now())
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.id], set_={"deleted_at": func.coalesce(c.deleted_at, func.now())}
    )
    await session.execute(stmt)
