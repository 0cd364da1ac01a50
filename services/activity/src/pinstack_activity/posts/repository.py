"""All SQL of the post projection."""

from __future__ import annotations

from sqlalchemy import exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import DeletedPost, Post

posts = Post.__table__  # type: ignore[attr-defined]
deleted_posts = DeletedPost.__table__  # type: ignore[attr-defined]
p, d = posts.c, deleted_posts.c

# Deletions older than this are forgotten by the worker's housekeeping: a lookup of the posts
# service that started before a deletion has long finished by then.
PURGE_TOMBSTONES = "DELETE FROM deleted_posts WHERE deleted_at < now() - interval '1 day'"


async def _lock(session: AsyncSession, post_id: int) -> None:
    """Adding and deleting one post take turns until their transactions end, so an insert either
    commits before the delete (which then removes it) or sees the tombstone."""
    await session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(f"activity.post:{post_id}", 0))))


async def add(session: AsyncSession, post_id: int, author_id: int) -> bool:
    """True when the post is new to the projection (never for a deleted one)."""
    await _lock(session, post_id)
    alive = ~exists().where(d.id == post_id)
    values = select(literal(post_id), literal(author_id)).where(alive)
    stmt = insert(posts).from_select(["id", "author_id"], values).on_conflict_do_nothing().returning(p.id)
    return (await session.execute(stmt)).first() is not None


async def known(session: AsyncSession, post_id: int) -> bool:
    return (await session.scalar(select(p.id).where(p.id == post_id))) is not None


async def delete(session: AsyncSession, post_id: int) -> None:
    """Its likes, comments and views go with it (ON DELETE CASCADE); a tombstone stays."""
    await _lock(session, post_id)
    await session.execute(insert(deleted_posts).values(id=post_id, deleted_at=func.now()).on_conflict_do_nothing())
    await session.execute(posts.delete().where(p.id == post_id))
