"""Request bodies and queries of the notifications service (internal API; the gateway applies
the public contract)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pinstack_kit.cursors import MAX_CURSOR_LENGTH
from pinstack_kit.validation import INT32_MAX, INT64_MAX

UserId = Annotated[int, Field(ge=1, le=INT64_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class SendNotification(Strict):
    user_id: UserId
    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    payload: Any = None  # any JSON; absent and null are both "no payload"
    sender_id: UserId | None = None  # who sends it: refused once that account is gone


class FeedQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    page: int = Field(1, ge=1, le=INT32_MAX)
    limit: int = Field(10, ge=1, le=100)
    cursor: str = Field(
        "", max_length=MAX_CURSOR_LENGTH, description="X-Next-Cursor of the previous page; empty: page numbers"
    )


class Caller(BaseModel):
    user_id: UserId
