"""All SQL of likes, views and the per-post counters. A like or a view is one insert that only
succeeds for a known post (it selects from the projection) and a conflict on the primary key
makes repeats and concurrent duplicates no-ops; the counter moves only when a row did."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Row, any_, bindparam, exists, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import Like, Post, View

posts = Post.__table__  # type: ignore[attr-defined]
likes = Like.__table__  # type: ignore[attr-defined]
views = View.__table__  # type: ignore[attr-defined]
p, lk, v = posts.c, likes.c, views.c


async def post(session: AsyncSession, post_id: int) -> Row | None:
    """The post's author and counters, or None when it is not known."""
    stmt = select(p.author_id, p.like_count, p.comment_count, p.view_count).where(p.id == post_id)
    return (await session.execute(stmt)).first()


async def add_like(session: AsyncSession, post_id: int, user_id: int) -> datetime | None:
    """The new like's time; None when it existed already or the post is unknown."""
    source = select(p.id, literal(user_id, BigInteger)).where(p.id == post_id)
    stmt = insert(likes).from_select([lk.post_id, lk.user_id], source).on_conflict_do_nothing().returning(lk.created_at)
    return await session.scalar(stmt)


async def remove_like(session: AsyncSession, post_id: int, user_id: int) -> bool:
    stmt = likes.delete().where(lk.post_id == post_id, lk.user_id == user_id).returning(lk.user_id)
    return (await session.execute(stmt)).first() is not None


async def add_view(session: AsyncSession, post_id: int, user_id: int, window_start: datetime) -> bool:
    source = select(p.id, literal(user_id, BigInteger), literal(window_start)).where(p.id == post_id)
    stmt = (
        insert(views)
        .from_select([v.post_id, v.user_id, v.window_start], source)
        .on_conflict_do_nothing()
        .returning(v.user_id)
    )
    return (await session.execute(stmt)).first() is not None


async def bump(session: AsyncSession, post_id: int, counter: str, delta: int) -> Row:
    """Move one counter of the post; returns its author and counters after the change."""
    column = p[counter]
    stmt = (
        update(posts)
        .where(p.id == post_id)
        .values({counter: column + delta})
        .returning(p.author_id, p.like_count, p.comment_count, p.view_count)
    )
    return (await session.execute(stmt)).one()


async def likers(session: AsyncSession, post_id: int, before: tuple[datetime, int] | None, limit: int) -> list[Row]:
    """(user_id, created_at) newest first, strictly after the `before` keyset."""
    stmt = select(lk.user_id, lk.created_at).where(lk.post_id == post_id)
    if before is not None:
        stmt = stmt.where(
            tuple_(lk.created_at, lk.user_id) < tuple_(literal(before[0]), literal(before[1], BigInteger))
        )
    stmt = stmt.order_by(lk.created_at.desc(), lk.user_id.desc()).limit(limit)
    return list((await session.execute(stmt)).all())


async def stats(session: AsyncSession, post_ids: Sequence[int], viewer_id: int) -> list[Row]:
    """Counters of the known posts among `post_ids`, and whether `viewer_id` liked each: one
    statement whatever the number of posts."""
    liked = exists().where(lk.post_id == p.id, lk.user_id == viewer_id)
    stmt = select(p.id, p.like_count, p.comment_count, p.view_count, liked.label("liked")).where(
        p.id == any_(bindparam("ids", list(post_ids), type_=ARRAY(BigInteger)))
    )
    return list((await session.execute(stmt)).all())
