"""Redis: one ACL user per service, on, with one password, limited to its key prefix."""

from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis

from pinstack_operator.builders.redis import COMMAND_RULES, AclUser, password_hash


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


def acl_in_line(actual: dict[str, object] | None, user: AclUser, password: str) -> bool:
    """Compare ACL GETUSER (raw reply as a dict) with the desired rules."""
    if not actual:
        return False
    return (
        "on" in _as_list(actual.get("flags"))
        and _as_list(actual.get("passwords")) == [password_hash(password)]
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


async def ensure_user(admin: Admin, user: AclUser, password: str) -> list[str]:
    async with admin.client() as client:
        actual = await get_user(client, user.username)
        if acl_in_line(actual, user, password):
            return []
        await client.execute_command("ACL", "SETUSER", user.username, *user.rules(password))
        return [f"{'updated' if actual else 'created'} Redis ACL user {user.username}"]


async def delete_user(admin: Admin, user: AclUser) -> list[str]:
    async with admin.client() as client:
        deleted = await client.execute_command("ACL", "DELUSER", user.username)
        return [f"deleted Redis ACL user {user.username}"] if deleted else []
