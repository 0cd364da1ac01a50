from datetime import datetime

from sqlalchemy import BigInteger, DateTime, MetaData
from sqlmodel import Field, SQLModel


class Table(SQLModel):
    # Own metadata: the `users` projection must not clash with other services' tables when
    # several services are imported into one process (the test run).
    metadata = MetaData()


class Follow(Table, table=True):
    """Mirror of migrations/0001_relations.sql (the SQL file is the schema's source of truth)."""

    __tablename__ = "follows"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    follower_id: int = Field(sa_type=BigInteger)
    followee_id: int = Field(sa_type=BigInteger)
    created_at: datetime = Field(sa_type=DateTime(timezone=True))


class User(Table, table=True):
    """Projection of the users service; `deleted_at` marks a tombstone."""

    __tablename__ = "users"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    username: str | None = None
    avatar_url: str | None = None
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
