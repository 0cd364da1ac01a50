"""User profiles: cache-aside reads, writes that invalidate after commit and emit events."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import UserCreated, UserDeleted, UserUpdated
from pinstack_contracts.topics import USER_EVENTS
from pinstack_kit import cursors
from pinstack_kit.cache import JsonCache
from pinstack_kit.db import after_commit
from pinstack_kit.envelope import dumps, rfc3339
from pinstack_kit.outbox import enqueue_event
from pinstack_users.config import Settings
from pinstack_users.credentials.hashing import hash_password
from pinstack_users.errors import UserNotFound
from pinstack_users.events import user_event
from pinstack_users.users import repository


def to_wire(row: Row) -> dict[str, Any]:
    """The contract's user object: optional fields omitted when null, times in RFC 3339 seconds."""
    user: dict[str, Any] = {"id": row.id, "username": row.username, "email": row.email}
    for field in ("full_name", "bio", "avatar_url"):
        value = getattr(row, field)
        if value is not None:
            user[field] = value
    user["created_at"] = rfc3339(row.created_at)
    user["updated_at"] = rfc3339(row.updated_at)
    return user


class UserCache:
    """Finished wire JSON under `id:{id}`, `username:{name}` and `email:{email}` (lower-cased),
    through the kit's JsonCache (tombstones on forget, fills only empty keys)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.cache = JsonCache(redis, name="user", prefix=settings.key_prefix, ttl=settings.cache_ttl_seconds)

    def key(self, kind: str, value: object) -> str:
        return self.cache.key(kind, str(value).lower())

    async def get(self, key: str) -> bytes | None:
        return await self.cache.get(key)

    async def put(self, key: str, payload: bytes) -> None:
        await self.cache.put(key, payload)

    async def forget(self, *identities: Row) -> None:
        await self.cache.forget(
            self.key(kind, getattr(row, field))
            for row in identities
            for kind, field in (("id", "id"), ("username", "username"), ("email", "email"))
        )


class UserService:
    def __init__(self, session: AsyncSession, redis: Redis, settings: Settings) -> None:
        self.session = session
        self.cache = UserCache(redis, settings)
        self.topic = settings.topic(USER_EVENTS)

    async def _read(self, kind: str, value: object, load: Any) -> bytes:
        key = self.cache.key(kind, value)
        cached = await self.cache.get(key)
        if cached is not None:
            return cached
        row = await load(self.session, value)
        if row is None:
            raise UserNotFound()
        payload = dumps(to_wire(row))
        await self.cache.put(key, payload)
        return payload

    async def get(self, user_id: int) -> bytes:
        return await self._read("id", user_id, repository.get_by_id)

    async def get_by_username(self, username: str) -> bytes:
        return await self._read("username", username, repository.get_by_username)

    async def get_by_email(self, email: str) -> bytes:
        return await self._read("email", email, repository.get_by_email)

    async def search(self, term: str, page: int, limit: int, cursor: str = "") -> tuple[dict[str, Any], str | None]:
        """A page and the cursor of the next one (users are in id order: the id is the key)."""
        after = cursors.decode(cursor, 1)[0] if cursor else None
        offset = 0 if after is not None else (page - 1) * limit
        rows, total = await repository.search(self.session, term, offset, limit + 1, after)
        more, rows = len(rows) > limit, rows[:limit]
        next_cursor = cursors.encode(rows[-1].id) if more else None
        return {"users": [to_wire(r) for r in rows], "total": total}, next_cursor

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        password = values.pop("password")
        values["password_hash"] = await hash_password(password)
        row = await repository.insert_user(self.session, values)
        user = to_wire(row)
        await enqueue_event(self.session, self.topic, user_event(UserCreated(**user)))
        return user

    async def update(self, user_id: int, values: dict[str, Any]) -> dict[str, Any]:
        result = await repository.update_user(self.session, user_id, values)
        if result is None:
            raise UserNotFound()
        old, new = result
        user = to_wire(new)
        await enqueue_event(self.session, self.topic, user_event(UserUpdated(**user)))
        after_commit(self.session, lambda: self.cache.forget(old, new))
        return user

    async def delete(self, user_id: int) -> None:
        row = await repository.delete_user(self.session, user_id)
        if row is None:
            raise UserNotFound()
        await enqueue_event(self.session, self.topic, user_event(UserDeleted(id=row.id)))
        after_commit(self.session, lambda: self.cache.forget(row))
