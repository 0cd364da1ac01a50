"""A local copy of users kept from `user-events`: the projection every service that needs users holds.

A service's projection is its own table, `id` plus what it needs of the users service's public
user object, and a `UserDirectory(UserProjection)` naming that table. The table's shape sets the
rules, so the services cannot drift apart on them:
- with `updated_at` the newer copy wins: a late `user_updated` changes nothing;
- with `deleted_at` a deleted user stays as a tombstone that no event and no lookup brings back
  (its copied fields are cleared); without it the row goes, and the users service answers 404.
Events can lag behind a fresh registration, so an id the projection has not seen is looked up
once in the users service and kept. A lookup fills a gap only, unless `updated_at` tells which
copy is newer.

Checks take a lock that the deletion has to wait for (a key-share lock where the deletion
deletes the row, a share lock where it updates it to a tombstone), so a deletion that races with
a write sees, and removes, what the write did. A hot write takes the same lock in the statement
that writes (`insert_when_live`, one round trip) and falls back to the full check when a user is
unseen or gone. `apply_user_events` applies the events; the service hands it its cascade: what
goes with a deleted user.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar

from aiokafka import ConsumerRecord
from sqlalchemy import Row, Table, TextClause, and_, func, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import User, UserCreated, UserDeleted, UserUpdated
from pinstack_kit.consumer import Handler, payload
from pinstack_kit.errors import AppError, NotFound
from pinstack_kit.http_client import ServiceClient

UserCascade = Callable[[AsyncSession, int], Awaitable[object]]


class UserProjection:
    """One service's projection of users in one session; `users` is the users service's client
    for ids the events have not brought yet."""

    table: ClassVar[Table]
    not_found: ClassVar[type[AppError]] = NotFound  # the service's "user not found"

    def __init__(self, session: AsyncSession, users: ServiceClient | None = None) -> None:
        self.session = session
        self.users = users

    def columns(self, user: dict[str, Any]) -> dict[str, Any]:
        """The row's values besides `id`, from the users service's public user object."""
        return {}

    async def remember(self, user: dict[str, Any]) -> bool:
        """Keep a copy from a user event; True when the stored row changed."""
        c = self.table.c
        values = {"id": int(user["id"]), **self.columns(user)}
        stmt = insert(self.table).values(**values)
        updates = {name: stmt.excluded[name] for name in values if name != "id"}
        if not updates:
            stmt = stmt.on_conflict_do_nothing(index_elements=[c.id])
        else:
            guards = []
            if "updated_at" in c:
                guards.append(c.updated_at <= stmt.excluded.updated_at)
            if "deleted_at" in c:
                guards.append(c.deleted_at.is_(None))
            where = and_(*guards) if guards else None
            stmt = stmt.on_conflict_do_update(index_elements=[c.id], set_=updates, where=where)
        return (await self.session.execute(stmt.returning(c.id))).first() is not None

    async def forget(self, user_id: int) -> None:
        """The user is deleted: a tombstone where the table keeps them, else the row goes."""
        c = self.table.c
        if "deleted_at" not in c:
            await self.session.execute(self.table.delete().where(c.id == user_id))
            return
        stmt = insert(self.table).values(id=user_id, deleted_at=func.now())
        cleared = {column.name: None for column in self.table.columns if column.name not in ("id", "deleted_at")}
        stmt = stmt.on_conflict_do_update(
            index_elements=[c.id], set_={**cleared, "deleted_at": func.coalesce(c.deleted_at, func.now())}
        )
        await self.session.execute(stmt)

    async def alive(self, *user_ids: int, lock: bool = False) -> bool:
        """Whether every id is a live user; with `lock` their rows stay locked until commit.

        Without a users client the caller vouches for an id the projection has not seen (it
        comes from an event of a service that checked it): the id alone is kept.
        """
        return await self._resolve(user_ids, lock) is not None

    async def require(self, *user_ids: int, lock: bool = False) -> list[Row]:
        """The rows of `user_ids`, in order; `not_found` unless every one is a live user."""
        rows = await self._resolve(user_ids, lock)
        if rows is None:
            raise self.not_found()
        return [rows[user_id] for user_id in user_ids]

    async def _resolve(self, user_ids: Sequence[int], lock: bool) -> dict[int, Row] | None:
        ids = list(dict.fromkeys(user_ids))
        rows = await self._read(ids, lock)
        unseen = [user_id for user_id in ids if user_id not in rows]
        if not all(self._is_alive(row) for row in rows.values()):
            return None
        if not unseen:
            return rows
        for user_id in unseen:
            if self.users is None:
                await self._fill(user_id, {})
                continue
            user = await self.users.find(f"/users/{user_id}")
            if user is None:
                return None
            if "updated_at" in self.table.c:
                await self.remember(user)
            else:
                await self._fill(user_id, self.columns(user))
        # Read again: a deletion may have won the race since the lookup.
        found = await self._read(unseen, lock)
        if len(found) < len(unseen) or not all(self._is_alive(row) for row in found.values()):
            return None
        return rows | found

    async def _fill(self, user_id: int, values: dict[str, Any]) -> None:
        stmt = insert(self.table).values(id=user_id, **values)
        await self.session.execute(stmt.on_conflict_do_nothing(index_elements=[self.table.c.id]))

    async def _read(self, user_ids: list[int], lock: bool) -> dict[int, Row]:
        return {row.id: row for row in await self.session.execute(_reading(self.table, lock), {"ids": user_ids})}

    @classmethod
    def insert_when_live(
        cls, users: Sequence[str], into: str, values: str, returning: str, on_conflict: str = ""
    ) -> str:
        """SQL of `INSERT INTO <into> SELECT <values>` that inserts only when every id bound as
        `users` is a live user here, locked as `require(lock=True)` locks them: the check and the
        write in one round trip. It returns `ends` (how many of them are; fewer sends the caller
        to the full check, which also looks up unseen ids) and `returning` (NULL unless inserted)."""
        live = " AND deleted_at IS NULL" if "deleted_at" in cls.table.c else ""
        ids = ", ".join(f":{user}" for user in users)
        return (
            f"WITH ends AS (SELECT id FROM {cls.table.name} WHERE id IN ({ids}){live} {_lock_clause(cls.table)}),"  # noqa: S608
            f" made AS (INSERT INTO {into} SELECT {values} WHERE (SELECT count(*) FROM ends) = {len(users)}"
            f" {on_conflict} RETURNING {returning})"
            f" SELECT (SELECT count(*) FROM ends) AS ends, (SELECT {returning} FROM made) AS {returning}"
        )

    def _is_alive(self, row: Row) -> bool:
        return getattr(row, "deleted_at", None) is None


def _lock_clause(table: Table) -> str:
    # A tombstone is an update, which only a share lock holds off; a deleted row needs no more
    # than a key-share lock, which lets a concurrent `user_updated` through.
    return "FOR SHARE" if "deleted_at" in table.c else "FOR KEY SHARE"


@functools.cache
def _reading(table: Table, lock: bool) -> TextClause:
    """The rows of `:ids`, built once per table: building a statement cost more than running it."""
    locked = f" {_lock_clause(table)}" if lock else ""
    return text(f"SELECT * FROM {table.name} WHERE id = ANY(:ids){locked}")  # noqa: S608 - a table name


def apply_user_events(
    directory: Callable[[AsyncSession], UserProjection],
    *,
    cascade: UserCascade | None = None,
    changed: UserCascade | None = None,
) -> Handler:
    """Applies `user-events` to the projection `directory` makes for a session. A deleted user's
    row is tombstoned (or deleted) before `cascade` runs: that waits for the writes in flight
    that locked the user, so the cascade sees them too. `changed` follows a stored change."""

    async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
        match payload(record, UserCreated, UserUpdated, UserDeleted):
            case UserDeleted(id=user_id):
                await directory(session).forget(user_id)
                if cascade is not None:
                    await cascade(session, user_id)
            case User() as user:
                if await directory(session).remember(user.model_dump()) and changed is not None:
                    await changed(session, user.id)

    return on_user_event
