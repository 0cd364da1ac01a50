"""All SQL of the feed: the follow and post projections and the timeline queries over them."""

from __future__ import annotations

import functools
from datetime import datetime

from sqlalchemy import BigInteger, Integer, Row, Select, bindparam, func, select, text, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_feed.models import Follow, FollowerCount, PostRef

follows = Follow.__table__  # type: ignore[attr-defined]
counts = FollowerCount.__table__  # type: ignore[attr-defined]
posts = PostRef.__table__  # type: ignore[attr-defined]
f, c, p = follows.c, counts.c, posts.c

NEWEST_FIRST = (p.created_at.desc(), p.id.desc())


# ------------------------------------------------------------------------------------ follows


async def add_follow(session: AsyncSession, follower_id: int, followee_id: int, at: datetime) -> int | None:
    """The followee's follower count with the new follow (it moves with it), or None when the
    follow was known."""
    stmt = (
        insert(follows)
        .values(follower_id=follower_id, followee_id=followee_id, created_at=at)
        .on_conflict_do_nothing()
        .returning(f.follower_id)
    )
    if (await session.execute(stmt)).first() is None:
        return None
    bump = insert(counts).values(user_id=followee_id, followers=1)
    bump = bump.on_conflict_do_update(index_elements=[c.user_id], set_={"followers": c.followers + 1})
    return await session.scalar(bump.returning(c.followers))


async def remove_follow(session: AsyncSession, follower_id: int, followee_id: int) -> bool:
    stmt = follows.delete().where(f.follower_id == follower_id, f.followee_id == followee_id).returning(f.follower_id)
    if (await session.execute(stmt)).first() is None:
        return False
    await session.execute(update(counts).where(c.user_id == followee_id).values(followers=c.followers - 1))
    return True


# -------------------------------------------------------------------------------------- posts


# Whom a post of `author` (a CTE with the author's id) is fanned out to, read in the statement
# that adds or removes the post: whether the author has more followers than `:threshold` (a
# celebrity, whose posts are merged at read time), and if not, the followers.
_AUDIENCE = """, audience AS (
    SELECT author.author_id,
           coalesce((SELECT followers FROM follower_counts WHERE user_id = author.author_id), 0) > :threshold
           AS celebrity
    FROM author
)
SELECT author_id, celebrity,
       CASE WHEN celebrity THEN '{}' ELSE ARRAY(SELECT follower_id FROM follows WHERE followee_id = author_id) END
       AS followers
FROM audience"""
_ADD_POST = text(
    "WITH author AS (INSERT INTO posts (id, author_id, created_at) VALUES (:post_id, :author_id, :created_at)"  # noqa: S608 - constants
    " ON CONFLICT DO NOTHING RETURNING author_id)" + _AUDIENCE
)
_REMOVE_POST = text(
    "WITH author AS (DELETE FROM posts WHERE id = :post_id RETURNING author_id)" + _AUDIENCE  # noqa: S608
)


async def add_post(
    session: AsyncSession, post_id: int, author_id: int, created_at: datetime, threshold: int
) -> Row | None:
    """The new post's audience (author_id, celebrity, followers), or None when it was known."""
    params = {"post_id": post_id, "author_id": author_id, "created_at": created_at, "threshold": threshold}
    return (await session.execute(_ADD_POST, params)).first()


async def remove_post(session: AsyncSession, post_id: int, threshold: int) -> Row | None:
    """The deleted post's audience (author_id, celebrity, followers), or None when it was not known."""
    return (await session.execute(_REMOVE_POST, {"post_id": post_id, "threshold": threshold})).first()


async def newest_of(session: AsyncSession, author_id: int, limit: int) -> list[Row]:
    stmt = select(p.id, p.created_at).where(p.author_id == author_id).order_by(*NEWEST_FIRST).limit(limit)
    return list((await session.execute(stmt)).all())


async def ids_of(session: AsyncSession, author_id: int) -> list[int]:
    return list((await session.scalars(select(p.id).where(p.author_id == author_id))).all())


# ---------------------------------------------------------------------------------- timelines


@functools.cache
def _followee_posts(celebrities: bool | None, paged: bool) -> Select:
    """The newest `:limit` posts of the accounts `:reader_id` follows (only the celebrities':
    True, all but theirs: False, every one: None) and of the reader, strictly before the cursor
    (`:before_at`, `:before_id`) when `paged`. The reader's own posts are always fanned out to
    their timeline, so never counted as a celebrity's.

    A lateral index scan per followee that stops at the limit, then one merge: the cost is bounded
    by followees x limit, never by how much the followees ever posted. Built once per variant with
    bound parameters: constructing it was a third of a feed page's CPU time."""
    reader, limit = bindparam("reader_id", type_=BigInteger), bindparam("limit", type_=Integer)
    followers = func.coalesce(c.followers, 0)
    authors = (
        select(f.followee_id.label("author_id"))
        .select_from(follows.outerjoin(counts, c.user_id == f.followee_id))
        .where(f.follower_id == reader)
    )
    if celebrities is True:
        authors = authors.where(followers > bindparam("threshold", type_=BigInteger))
    elif celebrities is False:
        authors = authors.where(followers <= bindparam("threshold", type_=BigInteger))
    me = select(reader.label("author_id"))
    followed = (authors if celebrities is True else authors.union_all(me)).subquery("followed")
    before = (
        [tuple_(p.created_at, p.id) < tuple_(bindparam("before_at"), bindparam("before_id", type_=BigInteger))]
        if paged
        else []
    )
    recent = (
        select(p.id, p.created_at)
        .where(p.author_id == followed.c.author_id, *before)
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


async def _page(
    session: AsyncSession,
    reader_id: int,
    celebrities: bool | None,
    threshold: int,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Row]:
    params: dict[str, object] = {"reader_id": reader_id, "threshold": threshold, "limit": limit}
    if before is not None:
        params["before_at"], params["before_id"] = before
    return list((await session.execute(_followee_posts(celebrities, before is not None), params)).all())


async def timeline_source(session: AsyncSession, reader_id: int, threshold: int, limit: int) -> list[Row]:
    """What the Redis timeline of `reader_id` holds when complete: the newest posts of the
    reader and of the accounts they follow, except the celebrities' (merged at read time)."""
    return await _page(session, reader_id, False, threshold, None, limit)


async def celebrity_page(
    session: AsyncSession,
    reader_id: int,
    threshold: int,
    before: tuple[datetime, int] | None,
    limit: int,
) -> list[Row]:
    """The newest posts of the celebrities `reader_id` follows, strictly before the cursor."""
    return await _page(session, reader_id, True, threshold, before, limit)


async def full_page(
    session: AsyncSession, reader_id: int, before: tuple[datetime, int] | None, limit: int
) -> list[Row]:
    """A page straight from the projections: beyond the Redis cap, or while Redis is down."""
    return await _page(session, reader_id, None, 0, before, limit)
