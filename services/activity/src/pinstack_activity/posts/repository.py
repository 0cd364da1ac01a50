"""All SQL of the post projection."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import Post

p = Post.__table__.c  # type: ignore[attr-defined]

# Deletions older than this are forgotten by the worker's housekeeping: a lookup of the posts
# service that started before a deletion has long finished by then.
PURGE_TOMBSTONES = "DELETE FROM deleted_posts WHERE deleted_at < now() - interval '1 day'"


# Lock and check in one round trip (migrations/0004): an insert either commits before the delete
# (which then removes it) or sees the tombstone. Many posts at once, each locked in turn.
_ADD = text(
    "SELECT n.id FROM unnest(CAST(:ids AS bigint[]), CAST(:author_ids AS bigint[])) AS n(id, author_id)"
    " WHERE activity_add_post(n.id, n.author_id)"
)
_DELETE = text("SELECT activity_delete_post(:id)")


async def add(session: AsyncSession, posts: Sequence[tuple[int, int]]) -> set[int]:
    """Adds (id, author_id) `posts` in one statement; the ids new to the projection (never a
    deleted one's)."""
    params = {"ids": [post_id for post_id, _ in posts], "author_ids": [author_id for _, author_id in posts]}
    return set(await session.scalars(_ADD, params))


async def known(session: AsyncSession, post_id: int) -> bool:
    return (await session.scalar(select(p.id).where(p.id == post_id))) is not None


async def delete(session: AsyncSession, post_id: int) -> None:
    """Its likes, comments and views go with it (ON DELETE CASCADE); a tombstone stays."""
    await session.execute(_DELETE, {"id": post_id})
