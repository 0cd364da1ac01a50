from datetime import datetime

from sqlalchemy import BigInteger, SmallInteger, Text
from sqlmodel import Field, SQLModel

# Mirrors of migrations/0001_posts.sql (the SQL file is the schema's source of truth). Column types
# are spelled out where SQLModel's defaults differ: ids are int64, and bound parameters are cast
# to the declared type.


class Author(SQLModel, table=True):
    """Projection of the users service's public profile."""

    __tablename__ = "authors"

    id: int = Field(primary_key=True, sa_type=BigInteger)
    username: str = Field(sa_type=Text)
    email: str = Field(sa_type=Text)
    full_name: str | None = Field(default=None, sa_type=Text)
    bio: str | None = Field(default=None, sa_type=Text)
    avatar_url: str | None = Field(default=None, sa_type=Text)
    updated_at: datetime


class Post(SQLModel, table=True):
    __tablename__ = "posts"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    author_id: int = Field(sa_type=BigInteger)
    title: str = Field(sa_type=Text)
    content: str | None = Field(default=None, sa_type=Text)
    created_at: datetime
    updated_at: datetime


class PostMedia(SQLModel, table=True):
    __tablename__ = "post_media"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    post_id: int = Field(foreign_key="posts.id", sa_type=BigInteger)
    url: str = Field(sa_type=Text)
    type: str = Field(sa_type=Text)
    position: int = Field(sa_type=SmallInteger)
    created_at: datetime


class Tag(SQLModel, table=True):
    __tablename__ = "tags"

    id: int | None = Field(default=None, primary_key=True, sa_type=BigInteger)
    name: str = Field(sa_type=Text)


class PostTag(SQLModel, table=True):
    __tablename__ = "posts_tags"

    post_id: int = Field(foreign_key="posts.id", primary_key=True, sa_type=BigInteger)
    tag_id: int = Field(foreign_key="tags.id", primary_key=True, sa_type=BigInteger)
    position: int = Field(sa_type=SmallInteger)
