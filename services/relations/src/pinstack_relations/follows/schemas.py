"""Request bodies and queries of the relations service (internal API; the gateway applies the
public contract and sanitises pagination, but the service validates on its own too)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from pinstack_kit.cursors import MAX_CURSOR_LENGTH
from pinstack_kit.validation import INT32_MAX, INT64_MAX

UserId = Annotated[int, Field(ge=1, le=INT64_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class FollowBody(Strict):
    follower_id: UserId
    followee_id: UserId


class FollowPair(BaseModel):  # query strings are text: numbers are parsed, not strict
    follower_id: UserId
    followee_id: UserId


class PageQuery(BaseModel):
    page: int = Field(1, ge=1, le=INT32_MAX)
    limit: int = Field(20, ge=1, le=100)
    cursor: str = Field(
        "", max_length=MAX_CURSOR_LENGTH, description="X-Next-Cursor of the previous page; empty: page numbers"
    )
