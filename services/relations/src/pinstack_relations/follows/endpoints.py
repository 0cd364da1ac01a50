from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.cursors import page_response
from pinstack_kit.envelope import ok
from pinstack_relations.deps import SessionDep, SettingsDep, UsersDep
from pinstack_relations.follows.schemas import FollowBody, FollowPair, PageQuery
from pinstack_relations.follows.service import FollowService

router = APIRouter(tags=["follows"])

UserId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]


@router.post("/follows", summary="Follow a user (emits follow_created)")
async def follow(body: FollowBody, session: SessionDep, settings: SettingsDep, users: UsersDep) -> Response:
    return ok(await FollowService(session, settings, users).follow(body.follower_id, body.followee_id))


@router.delete("/follows", summary="Unfollow a user (emits follow_deleted)")
async def unfollow(pair: Annotated[FollowPair, Query()], session: SessionDep, settings: SettingsDep) -> Response:
    await FollowService(session, settings).unfollow(pair.follower_id, pair.followee_id)
    return ok()


@router.get("/users/{user_id}/followers", summary="Who follows the user, newest first")
async def followers(
    user_id: UserId, query: Annotated[PageQuery, Query()], session: SessionDep, settings: SettingsDep, users: UsersDep
) -> Response:
    service = FollowService(session, settings, users)
    page, next_cursor = await service.related(
        user_id, followers=True, page=query.page, limit=query.limit, cursor=query.cursor
    )
    return page_response(page, next_cursor, cursor_mode=bool(query.cursor))


@router.get("/users/{user_id}/followees", summary="Whom the user follows, newest first")
async def followees(
    user_id: UserId, query: Annotated[PageQuery, Query()], session: SessionDep, settings: SettingsDep, users: UsersDep
) -> Response:
    service = FollowService(session, settings, users)
    page, next_cursor = await service.related(
        user_id, followers=False, page=query.page, limit=query.limit, cursor=query.cursor
    )
    return page_response(page, next_cursor, cursor_mode=bool(query.cursor))
