"""All SQL of the post projection."""

from __future__ import annotations

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import Post

p = Post.__table__.c  # type: ignore[attr-defined]

# Deletions older than this are forgotten by the worker's housekeeping: a lookup of the posts
# service that started before a deletion has long finished by then.
PURGE_TOMBSTONES = "DELETE FROM deleted_posts WHERE deleted_at < now() - interval '1 day'"


# Lock and check in one round trip (migrations/0004): an insert either commits before the delete
# (which then removes it) or sees the tombstone.
_ADD = text("SELECT activity_add_post(:id, :author_id)")
_DELETE = text("SELECT activity_delete_post(:id)")


async def add(session: AsyncSession, post_id: int, author_id: int) -> bool:
    """True when the post is new to the projection (never for a deleted one)."""
    return bool(await session.scalar(_ADD, {"id": post_id, "author_id": author_id}))


async def known(session: AsyncSession, post_id: int) -> bool:
    return (await session.scalar(select(p.id).where(p.id == post_id))) is not None


async def delete(session: AsyncSession, post_id: int) -> None:
    """Its likes, comments and views go with it (ON DELETE CASCADE); a tombstone stays."""
    await session.execute(_DELETE, {"id": post_id})
