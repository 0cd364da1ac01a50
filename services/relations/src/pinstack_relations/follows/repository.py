"""All SQL of follows. Lists are one statement each, with the users projection joined. A follow
and an unfollow run statements built once: building one costs more than running it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Row, func, literal, select, text, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_relations.models import Follow, User
from pinstack_relations.users.service import UserDirectory

follows = Follow.__table__  # type: ignore[attr-defined]
users = User.__table__  # type: ignore[attr-defined]
f = follows.c
u = users.c

MISSING_USER = "Missing user"


# The follow, when both ends are live users of the projection (kit `insert_when_live`): a deletion
# waits for it and then removes it too.
_FOLLOW_KNOWN = text(
    UserDirectory.insert_when_live(
        ("follower_id", "followee_id"),
        into="follows (follower_id, followee_id)",
        values=":follower_id, :followee_id",
        on_conflict="ON CONFLICT (follower_id, followee_id) DO NOTHING",
        returning="created_at",
    )
)


async def follow_known(session: AsyncSession, follower_id: int, followee_id: int) -> Row:
    """`ends` (how many of the two are known live users) and the new follow's `created_at`
    (None when the pair already exists, or when `ends` < 2 and nothing was inserted)."""
    return (await session.execute(_FOLLOW_KNOWN, {"follower_id": follower_id, "followee_id": followee_id})).one()


async def insert_follow(session: AsyncSession, follower_id: int, followee_id: int) -> Row | None:
    """The new follow, or None when the pair already exists."""
    stmt = (
        insert(follows)
        .values(follower_id=follower_id, followee_id=followee_id)
        .on_conflict_do_nothing(index_elements=[f.follower_id, f.followee_id])
        .returning(f.id, f.created_at)
    )
    return (await session.execute(stmt)).first()


_UNFOLLOW = text(
    "DELETE FROM follows WHERE follower_id = :follower_id AND followee_id = :followee_id"
    " RETURNING follower_id, followee_id, now() AS removed_at"
)


async def delete_follow(session: AsyncSession, follower_id: int, followee_id: int) -> Row | None:
    """The removed follow with the time of its removal, or None when there was none."""
    return (await session.execute(_UNFOLLOW, {"follower_id": follower_id, "followee_id": followee_id})).first()


async def delete_all_of(session: AsyncSession, user_id: int) -> list[Row]:
    """Every follow from or to `user_id`, removed."""
    stmt = (
        follows.delete()
        .where((f.follower_id == user_id) | (f.followee_id == user_id))
        .returning(f.follower_id, f.followee_id, func.now().label("removed_at"))
    )
    return list((await session.execute(stmt)).all())


async def list_related(
    session: AsyncSession,
    user_id: int,
    *,
    followers: bool,
    offset: int,
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> tuple[list[Row], int]:
    """A page of the users following `user_id` (followers) or followed by it, newest first, and
    how many there are in all. With `after` (keyset paging: a follow's created_at and id), only
    the follows strictly older than that."""
    mine, theirs = (f.followee_id, f.follower_id) if followers else (f.follower_id, f.followee_id)
    keyset = [tuple_(f.created_at, f.id) < tuple_(*after)] if after is not None else []
    total_col = func.count().over().label("total")
    stmt = (
        select(
            theirs.label("id"),
            func.coalesce(u.username, literal(MISSING_USER)).label("username"),
            u.avatar_url,
            f.created_at.label("followed_at"),
            f.id.label("follow_id"),
            total_col,
        )
        .select_from(follows.outerjoin(users, u.id == theirs))
        .where(mine == user_id, *keyset)
        .order_by(f.created_at.desc(), f.id.desc())
        .offset(offset)
        .limit(limit)
    )
    rows = list((await session.execute(stmt)).all())
    if rows and after is None:
        return rows, int(rows[0].total)  # the window counted every follow, not only this page
    if offset == 0 and after is None:
        return [], 0
    total = await session.scalar(select(func.count()).select_from(follows).where(mine == user_id))
    return rows, int(total or 0)
