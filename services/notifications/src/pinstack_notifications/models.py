from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, MetaData
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel


class Table(SQLModel):
    # Own metadata: the `users` projection must not clash with other services' tables when
    # several services are imported into one process (the test run).
    metadata = MetaData()


class Notification(Table, table=True):
    """Mirror of migrations/0001_notifications.sql (the SQL file is the schema's source of truth)."""

    __tablename__ = "notifications"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    user_id: int = Field(sa_type=BigInteger)
    type: str
    is_read: bool = False
    created_at: datetime = Field(sa_type=DateTime(timezone=True))
    # none_as_null: an absent payload is SQL NULL (omitted on the wire), not the JSON `null`.
    payload: Any = Field(default=None, sa_column=Column(JSONB(none_as_null=True)))
    actor_id: int | None = Field(default=None, sa_type=BigInteger)


class User(Table, table=True):
    """Projection of the users service; `deleted_at` marks a tombstone."""

    __tablename__ = "users"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    deleted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
