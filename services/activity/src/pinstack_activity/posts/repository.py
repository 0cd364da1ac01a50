"""All SQL of the post projection."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import Post

posts = Post.__table__  # type: ignore[attr-defined]
p = posts.c


async def add(session: AsyncSession, post_id: int, author_id: int) -> bool:
    """True when the post is new to the projection."""
    stmt = insert(posts).values(id=post_id, author_id=author_id).on_conflict_do_nothing().returning(p.id)
    return (await session.execute(stmt)).first() is not None


async def known(session: AsyncSession, post_id: int) -> bool:
    return (await session.scalar(select(p.id).where(p.id == post_id))) is not None


async def delete(session: AsyncSession, post_id: int) -> None:
    """Its likes, comments and views go with it (ON DELETE CASCADE)."""
    await session.execute(posts.delete().where(p.id == post_id))
