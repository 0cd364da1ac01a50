from datetime import datetime

from sqlalchemy import BigInteger, MetaData
from sqlmodel import Field, SQLModel

# Mirrors of migrations/0001_feed.sql (the SQL file is the schema's source of truth).


class Table(SQLModel):
    # Own metadata: the projections (`posts`, `users`) must not clash with other services' tables
    # when several services are imported into one process (the test run).
    metadata = MetaData()


class Follow(Table, table=True):
    """Projection of `relation-events`."""

    __tablename__ = "follows"

    follower_id: int = Field(primary_key=True, sa_type=BigInteger)
    followee_id: int = Field(primary_key=True, sa_type=BigInteger)
    created_at: datetime


class FollowerCount(Table, table=True):
    __tablename__ = "follower_counts"

    user_id: int = Field(primary_key=True, sa_type=BigInteger)
    followers: int = Field(sa_type=BigInteger)


class PostRef(Table, table=True):
    """Projection of `post-events`: just what ordering a timeline needs."""

    __tablename__ = "posts"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    author_id: int = Field(sa_type=BigInteger)
    created_at: datetime
