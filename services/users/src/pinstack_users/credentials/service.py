"""Checking and changing passwords. Hashes never leave this module."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.validation import SIMPLE_EMAIL
from pinstack_users.credentials.hashing import admit, hash_password, verify_password
from pinstack_users.errors import InvalidCredentials, UserNotFound
from pinstack_users.users import repository


async def verify(session: AsyncSession, login: str, password: str) -> int:
    """The user id for a login (email when it looks like one, else username) and password."""
    admit()  # shed before taking a database connection for a hash that would not run
    row = await repository.get_credentials(session, login=login, by_email=bool(SIMPLE_EMAIL.fullmatch(login)))
    if row is None:
        raise UserNotFound()
    if not await verify_password(row.password_hash, password):
        raise InvalidCredentials()
    return int(row.id)


async def change(session: AsyncSession, user_id: int, old_password: str, new_password: str) -> None:
    admit()
    row = await repository.get_credentials(session, user_id=user_id)
    if row is None:
        raise UserNotFound()
    if not await verify_password(row.password_hash, old_password):
        raise InvalidCredentials()
    new_hash = await hash_password(new_password)
    await repository.set_password_hash(session, user_id, new_hash)
