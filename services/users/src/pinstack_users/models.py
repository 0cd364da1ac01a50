from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class User(SQLModel, table=True):
    """Mirror of migrations/0001_users.sql (the SQL file is the schema's source of truth)."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)  # bigint: ids past 2**31 fit
    username: str
    email: str
    password_hash: str
    full_name: str | None = None
    bio: str | None = None
    avatar_url: str | None = None
    created_at: datetime
    updated_at: datetime
