"""All SQL of the users slice. Hot reads are single Core statements; never a password hash out."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_users.errors import EmailTaken, UsernameTaken
from pinstack_users.models import User

users = User.__table__  # type: ignore[attr-defined]
c = users.c

PUBLIC = (c.id, c.username, c.email, c.full_name, c.bio, c.avatar_url, c.created_at, c.updated_at)


def _unique_violation(exc: IntegrityError) -> Exception:
    text = str(exc.orig)
    if "users_username_key" in text:
        return UsernameTaken()
    if "users_email_key" in text:
        return EmailTaken()
    return exc


async def insert_user(session: AsyncSession, values: dict[str, Any]) -> Row:
    try:
        async with session.begin_nested():
            result = await session.execute(insert(users).values(**values).returning(*PUBLIC))
    except IntegrityError as exc:
        raise _unique_violation(exc) from exc
    return result.one()


async def get_by_id(session: AsyncSession, user_id: int) -> Row | None:
    return (await session.execute(select(*PUBLIC).where(c.id == user_id))).first()


async def get_by_username(session: AsyncSession, username: str) -> Row | None:
    stmt = select(*PUBLIC).where(func.lower(c.username) == username.lower())
    return (await session.execute(stmt)).first()


async def get_by_email(session: AsyncSession, email: str) -> Row | None:
    stmt = select(*PUBLIC).where(func.lower(c.email) == email.lower())
    return (await session.execute(stmt)).first()


async def get_credentials(
    session: AsyncSession, *, user_id: int | None = None, login: str | None = None, by_email: bool = False
) -> Row | None:
    stmt = select(c.id, c.password_hash)
    if user_id is not None:
        stmt = stmt.where(c.id == user_id)
    elif by_email:
        stmt = stmt.where(func.lower(c.email) == (login or "").lower())
    else:
        stmt = stmt.where(func.lower(c.username) == (login or "").lower())
    return (await session.execute(stmt)).first()


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def search(
    session: AsyncSession, term: str, offset: int, limit: int, after_id: int | None = None
) -> tuple[list[Row], int]:
    """Matches in id order, and how many there are in all; with `after_id` (keyset paging), only
    the users with a greater id."""
    pattern = f"%{_escape_like(term)}%"
    where = or_(
        c.username.ilike(pattern, escape="\\"),
        c.email.ilike(pattern, escape="\\"),
        c.full_name.ilike(pattern, escape="\\"),
    )
    total_col = func.count().over().label("total")
    keyset = [c.id > after_id] if after_id is not None else []
    stmt = select(*PUBLIC, total_col).where(where, *keyset).order_by(c.id).offset(offset).limit(limit)
    rows = list((await session.execute(stmt)).all())
    if rows and after_id is None:
        return rows, int(rows[0].total)  # the window counted every match, not only this page
    if offset == 0 and after_id is None:
        return [], 0
    total = await session.scalar(select(func.count()).select_from(users).where(where))
    return rows, int(total or 0)


async def update_user(session: AsyncSession, user_id: int, values: dict[str, Any]) -> tuple[Row, Row] | None:
    """Apply `values`; returns (old identity, new row) so every cache key of both can be dropped."""
    old = (await session.execute(select(c.id, c.username, c.email).where(c.id == user_id).with_for_update())).first()
    if old is None:
        return None
    try:
        async with session.begin_nested():
            stmt = update(users).where(c.id == user_id).values(**values, updated_at=func.now()).returning(*PUBLIC)
            new = (await session.execute(stmt)).one()
    except IntegrityError as exc:
        raise _unique_violation(exc) from exc
    return old, new


async def delete_user(session: AsyncSession, user_id: int) -> Row | None:
    return (await session.execute(users.delete().where(c.id == user_id).returning(*PUBLIC))).first()


async def set_password_hash(session: AsyncSession, user_id: int, password_hash: str) -> None:
    await session.execute(update(users).where(c.id == user_id).values(password_hash=password_hash))
