"""All SQL of the feed: the follow and post projections and the timeline queries over them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ColumnElement, Row, Select, func, literal, select, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_feed.models import Follow, FollowerCount, PostRef

follows = Follow.__table__  # type: ignore[attr-defined]
counts = FollowerCount.__table__  # type: ignore[attr-defined]
posts = PostRef.__table__  # type: ignore[attr-defined]
f, c, p = follows.c, counts.c, posts.c

NEWEST_FIRST = (p.created_at.desc(), p.id.desc())


def _before(cursor: tuple[datetime, int] | None) -> list[ColumnElement[bool]]:
    """Strictly after `cursor` in newest-first order (keyset pagination)."""
    if cursor is None:
        return []
    created_at, post_id = cursor
    return [tuple_(p.created_at, p.id) < tuple_(literal(created_at), literal(post_id, BigInteger))]


# ------------------------------------------------------------------------------------ follows


async def add_follow(session: AsyncSession, follower_id: int, followee_id: int, at: datetime) -> bool:
    """True when the follow is new; the followee's follower count moves with it."""
    stmt = (
        insert(follows)
        .values(follower_id=follower_id, followee_id=followee_id, created_at=at)
        .on_conflict_do_nothing()
        .returning(f.follower_id)
    )
    if (await session.execute(stmt)).first() is None:
        return False
    bump = insert(counts).values(user_id=followee_id, followers=1)
    bump = bump.on_conflict_do_update(index_elements=[c.user_id], set_={"followers": c.followers + 1})
    await session.execute(bump)
    return True


async def remove_follow(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    stmt = follows.delete().where(f.follower_id == follower_id, f.followee_id == followee_id).returning(f.follower_id)
    if (await session.execute(stmt)).first() is None:
        return False
    await session.execute(update(counts).where(c.user_id == followee_id).values(followers=c.followers - 1))
    return True


async def follower_count(session: AsyncSession, user_id: int) -> int:
    return int(await session.scalar(select(c.followers).where(c.user_id == user_id)) or 0)


async def followers_of(session: AsyncSession, user_id: int) -> list[int]:
    return list((await session.scalars(select(f.follower_id).where(f.followee_id == user_id))).all())


# -------------------------------------------------------------------------------------- posts


async def add_post(session: AsyncSession, post_id: int, author_id: int, created_at: datetime) -> bool:
    stmt = (
        insert(posts)
        .values(id=post_id, author_id=author_id, created_at=created_at)
        .on_conflict_do_nothing()
        .returning(p.id)
    )
    return (await session.execute(stmt)).first() is not None


async def remove_post(session: AsyncSession, post_id: int) -> Row | None:
    """The deleted post's (id, author_id, created_at), or None when it was not known."""
    stmt = posts.delete().where(p.id == post_id).returning(p.id, p.author_id, p.created_at)
    return (await session.execute(stmt)).first()


async def newest_of(session: AsyncSession, author_id: int, limit: int) -> list[Row]:
    stmt = select(p.id, p.created_at).where(p.author_id == author_id).order_by(*NEWEST_FIRST).limit(limit)
    return list((await session.execute(stmt)).all())


async def ids_of(session: AsyncSession, author_id: int) -> list[int]:
    return list((await session.scalars(select(p.id).where(p.author_id == author_id))).all())


# ---------------------------------------------------------------------------------- timelines


def _followee_posts(
    reader_id: int, threshold: int, celebrities: bool | None, before: tuple[datetime, int] | None, limit: int
) -> Select:
    """The newest `limit` posts of the accounts `reader_id` follows (only the celebrities': True,
    all but theirs: False, every one: None) and of the reader, strictly before the cursor. The
    reader's own posts are always fanned out to their timeline, so never counted as a celebrity's.

    A lateral index scan per followee that stops at `limit`, then one merge: the cost is bounded
    by followees x limit, never by how much the followees ever posted."""
    followers = func.coalesce(c.followers, 0)
    authors = (
        select(f.followee_id.label("author_id"))
        .select_from(follows.outerjoin(counts, c.user_id == f.followee_id))
        .where(f.follower_id == reader_id)
    )
    if celebrities is True:
        authors = authors.where(followers > threshold)
    elif celebrities is False:
        authors = authors.where(followers <= threshold)
    me = select(literal(reader_id, BigInteger).label("author_id"))
    followed = (authors if celebrities is True else authors.union_all(me)).subquery("followed")
    recent = (
        select(p.id, p.created_at)
        .where(p.author_id == followed.c.author_id, *_before(before))
        .order_by(*NEWEST_FIRST)
        .limit(limit)
        .lateral("recent")
    )
    return (
        select(recent.c.id, recent.c.created_at)
        .select_from(followed.join(recent, true()))
        .order_by(recent.c.created_at.desc(), recent.c.id.desc())
        .limit(limit)
    )


async def timeline_source(session: AsyncSession, reader_id: int, threshold: int, limit: int) -> list[Row]:
    """What the Redis timeline of `reader_id` holds when complete: the newest posts of the
    reader and of the accounts they follow, except the celebrities' (merged at read time)."""
    stmt = _followee_posts(reader_id, threshold, False, None, limit)
    return list((await session.execute(stmt)).all())


async def celebrity_page(
    session: AsyncSession,
    reader_id: int,
    threshold: int,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Row]:
    """The newest posts of the celebrities `reader_id` follows, strictly before the cursor."""
    return list((await session.execute(_followee_posts(reader_id, threshold, True, before, limit))).all())


async def full_page(
    session: AsyncSession, reader_id: int, before: tuple[datetime, int] | None, limit: int
) -> list[Row]:
    """A page straight from the projections: beyond the Redis cap, or while Redis is down."""
    return list((await session.execute(_followee_posts(reader_id, 0, None, before, limit))).all())
