"""Contract routes 23-29: the caller's notifications (feed, unread count, read, delete) and sending
one to any user. The notifications service checks ownership in the statement that reads or
changes the row; the gateway passes the caller from the token."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pinstack_contracts.limits import NOTIFICATIONS_PAGE_SIZE_DEFAULT, PAGE_MIN, PAGE_SIZE_MAX, PAGE_SIZE_MIN
from pinstack_gateway.body import json_body
from pinstack_gateway.deps import CurrentUser, NotificationsDep
from pinstack_gateway.fields import documented
from pinstack_gateway.notifications.schemas import (
    Notification,
    NotificationSent,
    NotificationsPage,
    SendNotificationRequest,
    SuccessMessage,
    UnreadCount,
)
from pinstack_gateway.params import CursorQuery, positive_id, query_int
from pinstack_gateway.proxy import forward, forward_page
from pinstack_kit.envelope import ok
from pinstack_kit.errors import InvalidInput

SendNotificationBody = Annotated[SendNotificationRequest, json_body(SendNotificationRequest)]

router = APIRouter(prefix="/api/v1/notification", tags=["notifications"])


def _strict_page(raw: str | None, default: int, low: int, high: int | None) -> int:
    """Present but not an int32 in range → `invalid input` (no silent default, unlike relations)."""
    value = query_int(raw, bits=32)
    if value is None:
        return default
    if value < low or (high is not None and value > high):
        raise InvalidInput()
    return value


def _success(message: str) -> Response:
    return ok({"success": True, "message": message})


# Static paths come before `/{notification_id}` so that they are not captured by it.


@router.get("/feed", summary="The caller's notifications, newest first", **documented(200, NotificationsPage, 400, 401))
async def feed(
    request: Request,
    caller: CurrentUser,
    notifications: NotificationsDep,
    page: Annotated[str | None, Query(description=f"int32 ≥ {PAGE_MIN}, default {PAGE_MIN}")] = None,
    limit: Annotated[
        str | None,
        Query(description=f"{PAGE_SIZE_MIN}-{PAGE_SIZE_MAX}, default {NOTIFICATIONS_PAGE_SIZE_DEFAULT}"),
    ] = None,
    cursor: CursorQuery = None,
) -> Response:
    params: dict[str, Any] = {
        "page": _strict_page(page, PAGE_MIN, PAGE_MIN, None),
        "limit": _strict_page(limit, NOTIFICATIONS_PAGE_SIZE_DEFAULT, PAGE_SIZE_MIN, PAGE_SIZE_MAX),
    }
    if cursor:
        params["cursor"] = cursor
    path = f"/users/{caller}/notifications"
    return await forward_page(request, notifications, path, params, position=("page",))


@router.get(
    "/unread-count", summary="How many of the caller's notifications are unread", **documented(200, UnreadCount, 401)
)
async def unread_count(caller: CurrentUser, notifications: NotificationsDep) -> Response:
    return await forward(notifications, "GET", f"/users/{caller}/notifications/unread-count")


@router.put("/read-all", summary="Mark every notification of the caller read", **documented(200, SuccessMessage, 401))
async def read_all(caller: CurrentUser, notifications: NotificationsDep) -> Response:
    await notifications.call("PUT", f"/users/{caller}/notifications/read-all")
    return _success("All notifications marked as read")


@router.post("/send", summary="Send a notification to any user", **documented(200, NotificationSent, 400, 401, 404))
async def send(caller: CurrentUser, body: SendNotificationBody, notifications: NotificationsDep) -> Response:
    upstream = {**body.model_dump(exclude_none=True), "sender_id": caller}
    sent = await notifications.call("POST", "/notifications", json=upstream)
    notification_id = sent.json()["data"]["notification_id"]
    return ok({"notification_id": notification_id, "message": "Notification sent successfully"})


@router.get(
    "/{notification_id}",
    summary="One of the caller's notifications",
    **documented(200, Notification, 400, 401, 403, 404),
)
async def get_notification(caller: CurrentUser, notification_id: str, notifications: NotificationsDep) -> Response:
    path = f"/notifications/{positive_id(notification_id)}"
    return await forward(notifications, "GET", path, params={"user_id": caller})


@router.put(
    "/{notification_id}/read",
    summary="Mark one of the caller's notifications read",
    **documented(200, SuccessMessage, 400, 401, 403, 404),
)
async def read(caller: CurrentUser, notification_id: str, notifications: NotificationsDep) -> Response:
    path = f"/notifications/{positive_id(notification_id)}/read"
    marked = await notifications.call("PUT", path, params={"user_id": caller})
    if marked.json()["data"]["already_read"]:
        return _success("Notification already marked as read")
    return _success("Notification marked as read")


@router.delete(
    "/{notification_id}",
    summary="Delete one of the caller's notifications",
    **documented(200, SuccessMessage, 400, 401, 403, 404),
)
async def delete(caller: CurrentUser, notification_id: str, notifications: NotificationsDep) -> Response:
    path = f"/notifications/{positive_id(notification_id)}"
    await notifications.call("DELETE", path, params={"user_id": caller})
    return _success("Notification removed successfully")
