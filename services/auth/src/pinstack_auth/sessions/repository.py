"""All SQL of refresh-token sessions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import Row, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_auth.models import RefreshToken

tokens = RefreshToken.__table__  # type: ignore[attr-defined]
c = tokens.c


async def add(session: AsyncSession, jti: uuid.UUID, family_id: uuid.UUID, user_id: int, expires_at: float) -> None:
    await session.execute(
        insert(tokens).values(
            jti=jti, family_id=family_id, user_id=user_id, expires_at=datetime.fromtimestamp(expires_at, UTC)
        )
    )


async def lock(session: AsyncSession, jti: uuid.UUID) -> Row | None:
    stmt = select(c.jti, c.family_id, c.user_id, c.expires_at, c.rotated_at, c.revoked_at, c.revoked_reason)
    return (await session.execute(stmt.where(c.jti == jti).with_for_update())).first()


async def mark_rotated(session: AsyncSession, jti: uuid.UUID) -> None:
    await session.execute(update(tokens).where(c.jti == jti).values(rotated_at=func.now()))


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        update(tokens)
        .where(c.family_id == family_id, c.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )


async def revoke_user(session: AsyncSession, user_id: int, reason: str) -> int:
    result = await session.execute(
        update(tokens)
        .where(c.user_id == user_id, c.revoked_at.is_(None))
        .values(revoked_at=func.now(), revoked_reason=reason)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


# Run by the worker's housekeeping: a refresh token a day past its expiry is refused by its own
# `exp` claim already, so its row (kept for reuse detection while it was valid) can go.
PURGE_EXPIRED = "DELETE FROM refresh_tokens WHERE expires_at < now() - interval '1 day'"
