import uuid
from datetime import datetime

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class RefreshToken(SQLModel, table=True):
    """Mirror of migrations/0001_refresh_tokens.sql (the SQL file is the source of truth)."""

    __tablename__ = "refresh_tokens"

    jti: uuid.UUID = Field(primary_key=True)
    family_id: uuid.UUID
    user_id: int = Field(sa_type=BigInteger)
    issued_at: datetime
    expires_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
