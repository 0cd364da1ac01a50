"""Request bodies and queries of the relations service (internal API; the gateway applies the
public contract and sanitises pagination, but the service validates on its own too)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pinstack_contracts.limits import CURSOR_MAX, PAGE_MAX, PAGE_MIN, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN
from pinstack_contracts.limits import Id as UserId


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class FollowBody(Strict):
    follower_id: UserId
    followee_id: UserId


class FollowPair(BaseModel):  # query strings are text: numbers are parsed, not strict
    follower_id: UserId
    followee_id: UserId


class PageQuery(BaseModel):
    page: int = Field(PAGE_MIN, ge=PAGE_MIN, le=PAGE_MAX)
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)
    cursor: str = Field(
        "", max_length=CURSOR_MAX, description="X-Next-Cursor of the previous page; empty: page numbers"
    )
