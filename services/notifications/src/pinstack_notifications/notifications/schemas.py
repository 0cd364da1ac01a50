"""Request bodies and queries of the notifications service (internal API; the gateway applies
the public contract)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pinstack_contracts.limits import (
    CURSOR_MAX,
    NOTIFICATION_TYPE_MAX,
    NOTIFICATION_TYPE_MIN,
    NOTIFICATIONS_PAGE_SIZE_DEFAULT,
    PAGE_MAX,
    PAGE_MIN,
    PAGE_SIZE_MAX,
    PAGE_SIZE_MIN,
)
from pinstack_contracts.limits import Id as UserId


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class SendNotification(Strict):
    user_id: UserId
    type: Annotated[str, StringConstraints(min_length=NOTIFICATION_TYPE_MIN, max_length=NOTIFICATION_TYPE_MAX)]
    payload: Any = None  # any JSON; absent and null are both "no payload"
    sender_id: UserId | None = None  # who sends it: refused once that account is gone


class FeedQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    page: int = Field(PAGE_MIN, ge=PAGE_MIN, le=PAGE_MAX)
    limit: int = Field(NOTIFICATIONS_PAGE_SIZE_DEFAULT, ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)
    cursor: str = Field(
        "", max_length=CURSOR_MAX, description="X-Next-Cursor of the previous page; empty: page numbers"
    )


class Caller(BaseModel):
    user_id: UserId
