import math
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from pinstack_contracts.limits import ID_MIN, NOTIFICATION_TYPE_MAX, NOTIFICATION_TYPE_MIN
from pinstack_gateway.fields import Body, Int64
from pinstack_kit.validation import INT64_MIN

MAX_PAYLOAD_DEPTH = 64
_UINT64_MAX = 2**64 - 1


def _storable(value: Any, depth: int = 0) -> Any:
    """A payload PostgreSQL's jsonb and the JSON encoders on the way can hold: no NUL in any
    string or key, finite numbers that fit 64 bits, bounded nesting (else `validation failed`)."""
    if depth > MAX_PAYLOAD_DEPTH:
        raise ValueError("payload nested too deeply")
    if isinstance(value, str):
        if "\x00" in value:
            raise ValueError("NUL character")
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not INT64_MIN <= value <= _UINT64_MAX:
            raise ValueError("number out of range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("number out of range")
    elif isinstance(value, list):
        for item in value:
            _storable(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            _storable(key, depth + 1)
            _storable(item, depth + 1)
    return value


class SendNotificationRequest(Body):
    user_id: Int64 = Field(0, ge=ID_MIN, description="the recipient")
    type: str = Field(
        "",
        min_length=NOTIFICATION_TYPE_MIN,
        max_length=NOTIFICATION_TYPE_MAX,
        description="free-form, e.g. `like`, `comment`, `system`",
    )
    payload: Annotated[Any, AfterValidator(_storable)] = Field(None, description="any JSON")


class Notification(BaseModel):
    id: int
    user_id: int
    type: str
    is_read: bool
    created_at: str = Field(description="RFC 3339 with fractional seconds, UTC")
    payload: Any = Field(None, description="any JSON; omitted when absent")


class NotificationsPage(BaseModel):
    notifications: list[Notification]
    total: int
    page: int
    limit: int
    total_pages: int


class UnreadCount(BaseModel):
    count: int


class SuccessMessage(BaseModel):
    success: bool
    message: str


class NotificationSent(BaseModel):
    notification_id: int
    message: str
