"""All SQL of the author projection."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_posts.models import Author

authors = Author.__table__  # type: ignore[attr-defined]
a = authors.c

PROFILE = (a.id, a.username, a.email, a.full_name, a.bio, a.avatar_url)


async def get_for_post(session: AsyncSession, author_id: int) -> Row | None:
    """The author, key-share locked until commit: a concurrent `user_deleted` (which deletes the
    row before the posts) waits for this transaction, then deletes the new post too."""
    stmt = select(*PROFILE).where(a.id == author_id).with_for_update(read=True, key_share=True)
    return (await session.execute(stmt)).first()


async def upsert(session: AsyncSession, values: dict[str, Any]) -> bool:
    """Insert or refresh the author unless the stored copy is newer; True when the row changed."""
    stmt = insert(authors).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[a.id],
        set_={name: stmt.excluded[name] for name in values if name != "id"},
        where=a.updated_at <= stmt.excluded.updated_at,
    )
    return (await session.execute(stmt.returning(a.id))).first() is not None


async def delete(session: AsyncSession, author_id: int) -> None:
    await session.execute(authors.delete().where(a.id == author_id))
