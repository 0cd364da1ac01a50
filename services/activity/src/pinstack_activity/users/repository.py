"""All SQL of the user projection."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Text, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import User

users = User.__table__  # type: ignore[attr-defined]
u = users.c


async def upsert(session: AsyncSession, user_id: int, username: str, updated_at: datetime) -> None:
    """Insert or refresh the user unless the stored copy is newer."""
    stmt = insert(users).values(id=user_id, username=username, updated_at=updated_at)
    stmt = stmt.on_conflict_do_update(
        index_elements=[u.id],
        set_={"username": stmt.excluded.username, "updated_at": stmt.excluded.updated_at},
        where=u.updated_at <= stmt.excluded.updated_at,
    )
    await session.execute(stmt)


async def delete(session: AsyncSession, user_id: int) -> None:
    await session.execute(users.delete().where(u.id == user_id))


async def ids_by_username(session: AsyncSession, names: Sequence[str]) -> dict[str, int]:
    """username → id for the names that exist (the latest holder when a rename is in flight)."""
    stmt = (
        select(u.username, u.id)
        .where(u.username == any_(bindparam("names", list(names), type_=ARRAY(Text))))
        .order_by(u.username, u.updated_at.desc())
        .ext(distinct_on(u.username))
    )
    return {row.username: row.id for row in (await session.execute(stmt)).all()}
