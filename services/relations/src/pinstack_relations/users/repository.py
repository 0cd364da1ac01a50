"""All SQL of the users projection."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_relations.models import User

users = User.__table__  # type: ignore[attr-defined]
c = users.c


async def known(session: AsyncSession, user_ids: list[int], *, lock: bool) -> dict[int, bool]:
    """Which of `user_ids` the projection knows, and whether each is alive (False: deleted).

    With `lock`, live rows are share-locked until commit: a concurrent deletion waits for this
    transaction, then sees (and removes) what it wrote.
    """
    stmt = select(c.id, c.deleted_at).where(c.id.in_(user_ids))
    if lock:
        stmt = stmt.with_for_update(read=True)
    return {row.id: row.deleted_at is None for row in await session.execute(stmt)}


async def add_if_absent(session: AsyncSession, user_id: int, username: str, avatar_url: str | None) -> None:
    """From a direct lookup: fills a gap only; the events stay the authority on changes."""
    stmt = insert(users).values(id=user_id, username=username, avatar_url=avatar_url)
    await session.execute(stmt.on_conflict_do_nothing(index_elements=[c.id]))


async def upsert(session: AsyncSession, user_id: int, username: str, avatar_url: str | None) -> None:
    stmt = insert(users).values(id=user_id, username=username, avatar_url=avatar_url)
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.id],
        set_={"username": stmt.excluded.username, "avatar_url": stmt.excluded.avatar_url},
        where=c.deleted_at.is_(None),  # a deleted user never comes back
    )
    await session.execute(stmt)


async def tombstone(session: AsyncSession, user_id: int) -> None:
    stmt = insert(users).values(id=user_id, deleted_at=func.now())
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.id],
        set_={"username": None, "avatar_url": None, "deleted_at": func.coalesce(c.deleted_at, func.now())},
    )
    await session.execute(stmt)
