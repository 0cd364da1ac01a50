from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from starlette.responses import Response

from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_feed.deps import RedisDep, SessionDep, SettingsDep
from pinstack_feed.timeline.schemas import FeedQuery
from pinstack_feed.timeline.service import FeedService
from pinstack_kit.envelope import ok

router = APIRouter(prefix="/users/{user_id}/feed", tags=["feed"])

UserId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]


@router.get("", summary="Home timeline, newest first: post ids with an opaque cursor")
async def home_timeline(
    user_id: UserId,
    query: Annotated[FeedQuery, Query()],
    request: Request,
    session: SessionDep,
    redis: RedisDep,
    settings: SettingsDep,
) -> Response:
    page = await FeedService(session, redis, settings).home(user_id, query.cursor, query.limit)
    headers = {}
    if page["next_cursor"]:
        next_url = request.url.include_query_params(cursor=page["next_cursor"], limit=query.limit)
        headers["Link"] = f'<{next_url.path}?{next_url.query}>; rel="next"'
    return ok(page, headers=headers)


@router.post("/rebuild", summary="Rebuild the timeline from the projections (operations, tests)")
async def rebuild_timeline(user_id: UserId, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    return ok({"entries": await FeedService(session, redis, settings).rebuild(user_id, replace=True)})
