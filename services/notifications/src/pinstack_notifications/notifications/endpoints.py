from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.cursors import page_response
from pinstack_kit.envelope import ok
from pinstack_notifications.deps import SessionDep, UsersDep
from pinstack_notifications.notifications.schemas import Caller, FeedQuery, SendNotification
from pinstack_notifications.notifications.service import NotificationService

router = APIRouter(tags=["notifications"])

Id = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]
CallerQuery = Annotated[Caller, Query()]


@router.post("/notifications", summary="Send a notification to a user")
async def send(body: SendNotification, session: SessionDep, users: UsersDep) -> Response:
    service = NotificationService(session, users)
    notification_id = await service.send(body.user_id, body.type, body.payload, sender_id=body.sender_id)
    return ok({"notification_id": notification_id})


@router.get("/users/{user_id}/notifications", summary="A user's notifications, newest first")
async def feed(user_id: Id, query: Annotated[FeedQuery, Query()], session: SessionDep) -> Response:
    page, next_cursor = await NotificationService(session).feed(user_id, query.page, query.limit, query.cursor)
    return page_response(page, next_cursor, cursor_mode=bool(query.cursor))


@router.get("/users/{user_id}/notifications/unread-count", summary="How many notifications are unread")
async def unread_count(user_id: Id, session: SessionDep) -> Response:
    return ok({"count": await NotificationService(session).unread_count(user_id)})


@router.put("/users/{user_id}/notifications/read-all", summary="Mark every notification of the user read")
async def read_all(user_id: Id, session: SessionDep) -> Response:
    return ok({"updated": await NotificationService(session).read_all(user_id)})


@router.get("/notifications/{notification_id}", summary="One notification, for its owner only")
async def get_notification(notification_id: Id, caller: CallerQuery, session: SessionDep) -> Response:
    return ok(await NotificationService(session).get(notification_id, caller.user_id))


@router.put("/notifications/{notification_id}/read", summary="Mark one notification read, for its owner only")
async def read(notification_id: Id, caller: CallerQuery, session: SessionDep) -> Response:
    already_read = await NotificationService(session).read(notification_id, caller.user_id)
    return ok({"already_read": already_read})


@router.delete("/notifications/{notification_id}", summary="Delete one notification, for its owner only")
async def delete(notification_id: Id, caller: CallerQuery, session: SessionDep) -> Response:
    await NotificationService(session).delete(notification_id, caller.user_id)
    return ok()
