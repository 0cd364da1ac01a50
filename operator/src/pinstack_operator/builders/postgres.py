"""Desired PostgreSQL state: one role and one database (owned by it) per service.

The service logs in as that role, or, after a credential rotation, as its alternate `<role>_alt`
(a member of it, whose sessions act as it: what they create belongs to the role). Rotations go
back and forth between the two, so the pods still on the old password keep logging in until the
new ones have replaced them; then the old login is switched off (PostgreSQL has one password per
role, so an overlap needs two roles)."""

from __future__ import annotations

from dataclasses import dataclass

from pinstack_contracts.services import BY_NAME
from pinstack_operator.builders.spec import EnvironmentSpec


@dataclass(frozen=True)
class Database:
    service: str
    name: str
    role: str

    @property
    def alternate(self) -> str:
        return f"{self.role}_alt"

    @property
    def logins(self) -> tuple[str, str]:
        return self.role, self.alternate

    def other_login(self, login: str) -> str:
        return self.alternate if login == self.role else self.role


def databases(env: EnvironmentSpec) -> list[Database]:
    """Databases and roles are both named <databasePrefix><service>."""
    prefix = env.postgres.database_prefix
    return [Database(s, f"{prefix}{s}", f"{prefix}{s}") for s in env.services if BY_NAME[s].database]


def database_url(env: EnvironmentSpec, db: Database, login: str, password: str) -> str:
    pg = env.postgres
    return f"postgresql://{login}:{password}@{pg.host}:{pg.port}/{db.name}?sslmode={pg.ssl_mode}"
