"""Desired PostgreSQL state: one login role and one database (owned by it) per service."""

from __future__ import annotations

from dataclasses import dataclass

from pinstack_operator.builders.spec import DATABASE_SERVICES, EnvironmentSpec


@dataclass(frozen=True)
class Database:
    service: str
    name: str
    role: str


def databases(env: EnvironmentSpec) -> list[Database]:
    """Databases and roles are both named <databasePrefix><service>."""
    prefix = env.postgres.database_prefix
    return [Database(s, f"{prefix}{s}", f"{prefix}{s}") for s in env.services if s in DATABASE_SERVICES]


def database_url(env: EnvironmentSpec, db: Database, password: str) -> str:
    pg = env.postgres
    return f"postgresql://{db.role}:{password}@{pg.host}:{pg.port}/{db.name}?sslmode={pg.ssl_mode}"
