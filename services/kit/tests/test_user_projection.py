"""The rules a projection's table shape sets: newer copy wins, tombstones stay, lookups fill gaps."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from sqlalchemy import BigInteger, Column, DateTime, MetaData, Table, Text, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from pinstack_contracts.events import USER_DELETED, USER_UPDATED
from pinstack_kit.errors import NotFound
from pinstack_kit.user_projection import UserProjection, apply_user_events

pytestmark = pytest.mark.integration

metadata = MetaData()
# Two shapes the services use: a newest-copy table without tombstones (posts' authors) and a
# tombstone table without timestamps (relations' users).
profiles = Table(
    "profiles",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
members = Table(
    "members",
    metadata,
    Column("id", BigInteger, primary_key=True),
    Column("username", Text),
    Column("deleted_at", DateTime(timezone=True)),
)
DDL = [
    "CREATE TEMP TABLE profiles (id bigint PRIMARY KEY, username text NOT NULL, updated_at timestamptz NOT NULL)"
    " ON COMMIT DROP",
    "CREATE TEMP TABLE members (id bigint PRIMARY KEY, username text, deleted_at timestamptz) ON COMMIT DROP",
]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


class UserGone(NotFound):
    message = "user not found"


class Profiles(UserProjection):
    table = profiles
    not_found = UserGone

    def columns(self, user: dict[str, Any]) -> dict[str, Any]:
        return {"username": user["username"], "updated_at": datetime.fromisoformat(user["updated_at"])}


class Members(UserProjection):
    table = members
    not_found = UserGone

    def columns(self, user: dict[str, Any]) -> dict[str, Any]:
        return {"username": user["username"]}


class UsersService:
    """Stands in for the users service's `GET /users/{id}` (a ServiceClient's `find`)."""

    def __init__(self, **users: dict[str, Any]) -> None:
        self.users = users
        self.asked: list[str] = []

    async def find(self, path: str) -> dict[str, Any] | None:
        self.asked.append(path)
        return self.users.get(path.rsplit("/", 1)[1])


def user(user_id: int, username: str, at: datetime = NOW) -> dict[str, Any]:
    """The users service's public user object, as `user-events` carry it."""
    stamp = at.isoformat()
    return {
        "id": user_id,
        "username": username,
        "email": f"{username}@example.com",
        "created_at": stamp,
        "updated_at": stamp,
    }


@pytest.fixture
async def session(engine: AsyncEngine) -> AsyncIterator[AsyncSession]:
    async with AsyncSession(engine) as session, session.begin():
        for ddl in DDL:
            await session.execute(text(ddl))
        yield session


async def rows(session: AsyncSession, table: Table) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in await session.execute(select(table).order_by(table.c.id))]


class TestRemember:
    async def test_the_newer_copy_wins_where_the_table_has_updated_at(self, session: AsyncSession) -> None:
        directory = Profiles(session)
        assert await directory.remember(user(1, "ada"))
        assert await directory.remember(user(1, "ada2", NOW + timedelta(seconds=1)))
        assert not await directory.remember(user(1, "late", NOW))  # an older event arriving late
        assert await rows(session, profiles) == [(1, "ada2", NOW + timedelta(seconds=1))]

    async def test_a_tombstone_is_never_brought_back(self, session: AsyncSession) -> None:
        directory = Members(session)
        await directory.remember(user(1, "ada"))
        await directory.forget(1)
        assert not await directory.remember(user(1, "ada"))
        [(user_id, username, deleted_at)] = await rows(session, members)
        assert (user_id, username) == (1, None) and deleted_at is not None
        assert not await directory.alive(1)


class TestForget:
    async def test_without_deleted_at_the_row_goes(self, session: AsyncSession) -> None:
        directory = Profiles(session)
        await directory.remember(user(1, "ada"))
        await directory.forget(1)
        assert await rows(session, profiles) == []

    async def test_a_user_never_seen_leaves_a_tombstone_too(self, session: AsyncSession) -> None:
        await Members(session).forget(7)
        assert [row[0] for row in await rows(session, members)] == [7]
        assert not await Members(session, UsersService(**{"7": user(7, "x")})).alive(7)


class TestLookups:
    async def test_an_unseen_user_is_asked_for_once_and_kept(self, session: AsyncSession) -> None:
        users = UsersService(**{"2": user(2, "bob")})
        directory = Members(session, users)
        [row] = await directory.require(2, lock=True)
        assert row.username == "bob"
        await directory.require(2)
        assert users.asked == ["/users/2"]

    async def test_a_user_the_users_service_does_not_know_is_not_found(self, session: AsyncSession) -> None:
        directory = Profiles(session, UsersService())
        with pytest.raises(UserGone):
            await directory.require(3)
        assert await rows(session, profiles) == []

    async def test_without_a_client_the_caller_vouches_for_the_id(self, session: AsyncSession) -> None:
        assert await Members(session).alive(4, 5, lock=True)
        assert await rows(session, members) == [(4, None, None), (5, None, None)]


def record(kind: str, data: dict[str, Any]) -> Any:
    value = orjson.dumps({"type": kind, "data": data})
    return SimpleNamespace(value=value, headers=[("event_type", kind.encode())])


class TestApplyUserEvents:
    async def test_deletion_tombstones_then_cascades_and_changes_are_reported(self, session: AsyncSession) -> None:
        seen: list[tuple[str, int, list[tuple[Any, ...]]]] = []

        async def cascade(session: AsyncSession, user_id: int) -> None:
            seen.append(("cascade", user_id, await rows(session, members)))

        async def changed(session: AsyncSession, user_id: int) -> None:
            seen.append(("changed", user_id, []))

        handle = apply_user_events(Members, cascade=cascade, changed=changed)
        await handle(session, record(USER_UPDATED, user(1, "ada")))
        await handle(session, record("post_created", {"id": 1}))  # not a user event: ignored
        await handle(session, record(USER_DELETED, {"id": 1}))
        assert [(kind, user_id) for kind, user_id, _ in seen] == [("changed", 1), ("cascade", 1)]
        [(_, username, deleted_at)] = seen[1][2]  # the cascade runs after the tombstone
        assert username is None and deleted_at is not None
