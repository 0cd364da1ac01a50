from datetime import datetime

from sqlalchemy import BigInteger, MetaData, Text
from sqlmodel import Field, SQLModel

# Mirrors of migrations/*.sql (the SQL files are the schema's source of truth).


class Table(SQLModel):
    # Own metadata: the projections (`posts`, `users`) must not clash with other services' tables
    # when several services are imported into one process (the test run).
    metadata = MetaData()


class Post(Table, table=True):
    """Projection of `post-events`, with the post's counters."""

    __tablename__ = "posts"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    author_id: int = Field(sa_type=BigInteger)
    like_count: int = Field(0, sa_type=BigInteger)
    comment_count: int = Field(0, sa_type=BigInteger)
    view_count: int = Field(0, sa_type=BigInteger)


class DeletedPost(Table, table=True):
    """Tombstone of a deleted post: a late lookup must not bring it back (0002_deleted_posts.sql)."""

    __tablename__ = "deleted_posts"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    deleted_at: datetime


class DeletedUser(Table, table=True):
    """Tombstone of a deleted account: a late write of it must not stay (0003_deleted_users.sql)."""

    __tablename__ = "deleted_users"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    deleted_at: datetime


class User(Table, table=True):
    """Projection of `user-events`: usernames for @mentions."""

    __tablename__ = "users"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    username: str = Field(sa_type=Text)
    updated_at: datetime


class Like(Table, table=True):
    __tablename__ = "likes"

    post_id: int = Field(primary_key=True, foreign_key="posts.id", sa_type=BigInteger)
    user_id: int = Field(primary_key=True, sa_type=BigInteger)
    created_at: datetime


class Comment(Table, table=True):
    __tablename__ = "comments"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    post_id: int = Field(foreign_key="posts.id", sa_type=BigInteger)
    author_id: int = Field(sa_type=BigInteger)
    parent_id: int | None = Field(default=None, foreign_key="comments.id", sa_type=BigInteger)
    content: str = Field(sa_type=Text)
    created_at: datetime


class View(Table, table=True):
    __tablename__ = "views"

    post_id: int = Field(primary_key=True, foreign_key="posts.id", sa_type=BigInteger)
    user_id: int = Field(primary_key=True, sa_type=BigInteger)
    window_start: datetime = Field(primary_key=True)
