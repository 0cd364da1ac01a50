"""All SQL of the feed: the follow and post projections and the timeline queries over them."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import BigInteger, Integer, Row, Select, bindparam, func, select, text, true, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_feed.models import Follow, FollowerCount, PostRef

follows = Follow.__table__  # type: ignore[attr-defined]
counts = FollowerCount.__table__  # type: ignore[attr-defined]
posts = PostRef.__table__  # type: ignore[attr-defined]
f, c, p = follows.c, counts.c, posts.c

NEWEST_FIRST = (p.created_at.desc(), p.id.desc())


# ------------------------------------------------------------------------------------ follows


# A follow applied with what the follower's timeline needs, in one statement: the followee's
# follower count with it and, unless that count passes `:threshold` (a celebrity's posts are
# merged at read time), their newest `:limit` posts. No row when the follow was known; one row
# with a NULL id when there is no post to add.
_ADD_FOLLOW = text(
    "WITH made AS (INSERT INTO follows (follower_id, followee_id, created_at)"
    " VALUES (:follower_id, :followee_id, :at) ON CONFLICT DO NOTHING RETURNING followee_id),"
    " counted AS (INSERT INTO follower_counts (user_id, followers) SELECT followee_id, 1 FROM made"
    " ON CONFLICT (user_id) DO UPDATE SET followers = follower_counts.followers + 1 RETURNING followers)"
    " SELECT counted.followers, recent.id, recent.created_at FROM counted LEFT JOIN LATERAL"
    " (SELECT id, created_at FROM posts WHERE author_id = :followee_id AND counted.followers <= :threshold"
    " ORDER BY created_at DESC, id DESC LIMIT :limit) recent ON true"
)
# An unfollow, with the ids of the followee's posts to take out of the follower's timeline; no
# row when there was no such follow.
_REMOVE_FOLLOW = text(
    "WITH gone AS (DELETE FROM follows WHERE follower_id = :follower_id AND followee_id = :followee_id"
    " RETURNING followee_id),"
    " uncounted AS (UPDATE follower_counts SET followers = followers - 1"
    " WHERE user_id IN (SELECT followee_id FROM gone))"
    " SELECT ARRAY(SELECT id FROM posts WHERE author_id = :followee_id) AS post_ids FROM gone"
)


async def add_follow(
    session: AsyncSession, follower_id: int, followee_id: int, at: datetime, threshold: int, limit: int
) -> list[Row]:
    """Rows of (followers, id, created_at): see `_ADD_FOLLOW`."""
    params = {"follower_id": follower_id, "followee_id": followee_id, "at": at, "threshold": threshold, "limit": limit}
    return list((await session.execute(_ADD_FOLLOW, params)).all())


async def remove_follow(session: AsyncSession, follower_id: int, followee_id: int) -> list[int] | None:
    """The followee's post ids, or None when there was no such follow."""
    params = {"follower_id": follower_id, "followee_id": followee_id}
    row = (await session.execute(_REMOVE_FOLLOW, params)).first()
    return None if row is None else list(row.post_ids)


# -------------------------------------------------------------------------------------- posts


# Whom the posts in `changed` (a CTE of id, author_id, created_at) are fanned out to, read in
# the statement that adds or removes them: whether the author has more followers than
# `:threshold` (a celebrity, whose posts are merged at read time), and if not, the followers.
_AUDIENCE = """
SELECT changed.id, changed.author_id, changed.created_at, audience.celebrity,
       CASE WHEN audience.celebrity THEN '{}'
            ELSE ARRAY(SELECT follower_id FROM follows WHERE followee_id = changed.author_id) END AS followers
FROM changed CROSS JOIN LATERAL (
    SELECT coalesce((SELECT followers FROM follower_counts WHERE user_id = changed.author_id), 0) > :threshold
    AS celebrity
) AS audience"""
_ADD_POSTS = text(
    "WITH changed AS (INSERT INTO posts (id, author_id, created_at)"  # noqa: S608 - constants
    " SELECT * FROM unnest(CAST(:ids AS bigint[]), CAST(:author_ids AS bigint[]), CAST(:created AS timestamptz[]))"
    " ON CONFLICT DO NOTHING RETURNING id, author_id, created_at)" + _AUDIENCE
)
_REMOVE_POST = text(
    "WITH changed AS (DELETE FROM posts WHERE id = :post_id RETURNING id, author_id, created_at)" + _AUDIENCE  # noqa: S608
)


async def add_posts(session: AsyncSession, posts: Sequence[tuple[int, int, datetime]], threshold: int) -> list[Row]:
    """Adds (id, author_id, created_at) `posts` in one statement; the audience (id, author_id,
    created_at, celebrity, followers) of each one not known before."""
    params = {
        "ids": [post_id for post_id, _, _ in posts],
        "author_ids": [author_id for _, author_id, _ in posts],
        "created": [created_at for _, _, created_at in posts],
        "threshold": threshold,
    }
    return list((await session.execute(_ADD_POSTS, params)).all())


async def remove_post(session: AsyncSession, post_id: int, threshold: int) -> Row | None:
    """The deleted post's audience (as `add_posts`), or None when it was not known."""
    return (await session.execute(_REMOVE_POST, {"post_id": post_id, "threshold": threshold})).first()


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
