"""Desired Redis state: one ACL user per service, limited to its key (and channel) prefix."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from pinstack_operator.builders.spec import EnvironmentSpec

# Commands a service may run: everything but dangerous (and administrative) commands.
COMMAND_RULES = ("+@all", "-@dangerous")  # @dangerous includes every @admin command


@dataclass(frozen=True)
class AclUser:
    service: str
    username: str
    key_prefix: str

    @property
    def key_pattern(self) -> str:
        return f"{self.key_prefix}*"

    def rules(self, password: str, keep: Iterable[str] = ()) -> list[str]:
        """ACL SETUSER arguments: reset first so the result is exactly this, whatever was there.
        `keep`: hashes of passwords that stay valid beside it (a rotation's old one)."""
        kept = [f"#{h}" for h in keep if h != password_hash(password)]
        return ["reset", "on", f">{password}", *kept, f"~{self.key_pattern}", f"&{self.key_pattern}", *COMMAND_RULES]


def password_hash(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def acl_users(env: EnvironmentSpec) -> list[AclUser]:
    """User <keyPrefix><service>, keys and channels under <keyPrefix><service>: (REDIS_KEY_PREFIX)."""
    prefix = env.redis.key_prefix
    return [AclUser(s, f"{prefix}{s}", f"{prefix}{s}:") for s in env.services]


def redis_url(env: EnvironmentSpec, user: AclUser, password: str) -> str:
    rd = env.redis
    scheme = "rediss" if rd.tls else "redis"
    return f"{scheme}://{user.username}:{password}@{rd.host}:{rd.port}/{rd.database}"
