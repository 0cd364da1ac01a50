"""All SQL of the user projection."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Text, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import User

u = User.__table__.c  # type: ignore[attr-defined]

# Run by the worker's housekeeping: a day after the deletion no token of the account is alive.
PURGE_TOMBSTONES = "DELETE FROM deleted_users WHERE deleted_at < now() - interval '1 day'"


# Lock and check in one round trip (migrations/0004).
_ALIVE = text("SELECT activity_user_alive(:id)")
_TOMBSTONE = text("SELECT activity_tombstone_user(:id)")


async def alive(session: AsyncSession, user_id: int) -> bool:
    """Whether `user_id` may still write. Holds the user's lock shared until commit: the erasure
    of a deleted account waits for this write and then removes it too, or went first and left
    its tombstone, which the check (a snapshot taken after the lock) sees."""
    return bool(await session.scalar(_ALIVE, {"id": user_id}))


async def tombstone(session: AsyncSession, user_id: int) -> None:
    """Takes the user's lock exclusively (writes of the user in flight finish first) and leaves a
    tombstone; the caller removes the user and erases their activity in the same transaction."""
    await session.execute(_TOMBSTONE, {"id": user_id})


# Each statement deletes one kind of row of the user and moves the counters of the posts it
# touched by exactly what went (a data-modifying CTE: one round trip per kind).
_ERASE = [
    text(
        f"WITH gone AS (DELETE FROM {table} WHERE user_id = :user_id RETURNING post_id)"  # noqa: S608 - constants
        f" UPDATE posts SET {counter} = posts.{counter} - g.n"
        " FROM (SELECT post_id, count(*) AS n FROM gone GROUP BY post_id) g WHERE posts.id = g.post_id"
    )
    for table, counter in (("likes", "like_count"), ("views", "view_count"))
]
_ERASE.append(
    text(
        "WITH RECURSIVE thread AS ("
        " SELECT id FROM comments WHERE author_id = :user_id"
        " UNION SELECT r.id FROM comments r JOIN thread t ON r.parent_id = t.id),"
        " gone AS (DELETE FROM comments WHERE id IN (SELECT id FROM thread) RETURNING post_id)"
        " UPDATE posts SET comment_count = posts.comment_count - g.n"
        " FROM (SELECT post_id, count(*) AS n FROM gone GROUP BY post_id) g WHERE posts.id = g.post_id"
    )
)


async def erase_activity(session: AsyncSession, user_id: int) -> None:
    for statement in _ERASE:
        await session.execute(statement, {"user_id": user_id})


async def ids_by_username(session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
    """username → id for the names that exist (the latest holder when a rename is in flight)."""
    stmt = (
        select(u.username, u.id)
        .where(u.username == any_(bindparam("names", list(names), type_=ARRAY(Text))))
        .order_by(u.username, u.updated_at.desc())
        .ext(distinct_on(u.username))
    )
    return {row.username: row.id for row in (await session.execute(stmt)).all()}
