"""Redis: one ACL user per service, on, with one password (two while a rotation rolls out),
limited to its key prefix."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from pinstack_operator.builders.ownership import Conflict, redis_marker
from pinstack_operator.builders.redis import COMMAND_RULES, AclUser, password_hash
from pinstack_operator.conditions import ROTATION_DONE


@dataclass(frozen=True)
class Admin:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    def client(self) -> aioredis.Redis:
        return aioredis.Redis(
            host=self.host,
            port=self.port,
            username=self.username or None,
            password=self.password or None,
            ssl=self.tls,
            socket_timeout=10,
            decode_responses=True,
        )


def _as_list(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(v) for v in value]  # type: ignore[attr-defined]


def acl_in_line(actual: dict[str, object] | None, user: AclUser, password: str, retire: bool = True) -> bool:
    """Compare ACL GETUSER (raw reply as a dict) with the desired rules. `retire`: the password is
    the only one; else others (a rotation's old one) may still be valid beside it."""
    if not actual:
        return False
    passwords = _as_list(actual.get("passwords"))
    return (
        "on" in _as_list(actual.get("flags"))
        and (passwords == [password_hash(password)] if retire else password_hash(password) in passwords)
        and _as_list(actual.get("keys")) == [f"~{user.key_pattern}"]
        and _as_list(actual.get("channels")) == [f"&{user.key_pattern}"]
        and _as_list(actual.get("commands")) == list(COMMAND_RULES)
    )


async def get_user(client: aioredis.Redis, username: str) -> dict[str, object] | None:
    reply = await client.execute_command("ACL", "GETUSER", username)
    if not reply:
        return None
    if isinstance(reply, dict):
        return {str(k): v for k, v in reply.items()}
    items = list(reply)
    return {str(items[i]): items[i + 1] for i in range(0, len(items), 2)}


def _not_made_for(user: AclUser, owner: str) -> str:
    return (
        f"Redis user {user.username} exists but was not made for {owner}: "
        f"SET {redis_marker(user.username)} {owner} hands it over"
    )


async def _save(client: aioredis.Redis) -> None:
    """ACL SAVE: a Managed Redis keeps its users in an ACL file across restarts. An External one
    started without an ACL file keeps them as its owner configured it (in memory, or CONFIG
    REWRITE); the operator makes them again at its next reconcile after a restart."""
    try:
        await client.execute_command("ACL", "SAVE")
    except ResponseError as exc:
        if "not configured to use an ACL file" not in str(exc):
            raise


async def foreign_owners(admin: Admin, users: list[AclUser], owner: str) -> list[str]:
    """Read only: why `owner` may not have each ACL user (another environment's, or not made for
    it: a user without an owner marker)."""
    async with admin.client() as client:
        found = await client.mget([redis_marker(u.username) for u in users]) if users else []
        existing = set(await client.acl_users())
    out = []
    for u, other in zip(users, found, strict=True):
        if other is not None and other != owner:
            out.append(f"Redis user {u.username} (keys {u.key_pattern}) belongs to {other!s}")
        elif other is None and u.username in existing:
            out.append(_not_made_for(u, owner))
    return out


async def ensure_user(admin: Admin, user: AclUser, password: str, owner: str, *, retire: bool = True) -> list[str]:
    """The user with `password`. `retire`: its only one; until then the passwords it had stay
    valid beside it, so pods on a rotation's old Secret keep connecting until they are replaced."""
    async with admin.client() as client:
        marker = redis_marker(user.username)
        # The marker is set before the user is made, so a user without one was made by someone else.
        if await client.get(marker) is None and await get_user(client, user.username) is not None:
            raise Conflict(_not_made_for(user, owner))
        # SET NX: of two environments claiming the same user at once, exactly one wins.
        await client.set(marker, owner, nx=True)
        other = str(await client.get(marker))
        if other != owner:
            raise Conflict(f"Redis user {user.username} (keys {user.key_pattern}) belongs to {other}")
        actual = await get_user(client, user.username)
        if acl_in_line(actual, user, password, retire):
            return []
        had = _as_list((actual or {}).get("passwords"))
        await client.execute_command("ACL", "SETUSER", user.username, *user.rules(password, [] if retire else had))
        await _save(client)
        if retire and password_hash(password) in had and acl_in_line(actual, user, password, retire=False):
            return [f"{ROTATION_DONE}only the new password for Redis ACL user {user.username}"]
        return [f"{'updated' if actual else 'created'} Redis ACL user {user.username}"]


async def delete_user(admin: Admin, user: AclUser, owner: str) -> list[str]:
    """Deletes the user and its ownership marker when they are `owner`'s (never a user another
    environment owns or that was not made for one)."""
    async with admin.client() as client:
        if await client.get(redis_marker(user.username)) != owner:
            return []
        deleted = await client.execute_command("ACL", "DELUSER", user.username)
        await _save(client)
        await client.delete(redis_marker(user.username))
        return [f"deleted Redis ACL user {user.username}"] if deleted else []
