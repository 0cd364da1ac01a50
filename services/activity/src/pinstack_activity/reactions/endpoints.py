from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from pinstack_activity.deps import PostsDep, SessionDep, SettingsDep
from pinstack_activity.reactions.schemas import PageQuery, StatsQuery, ViewBody
from pinstack_activity.reactions.service import ReactionService
from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.envelope import ok

router = APIRouter(prefix="/posts", tags=["reactions"])

PostId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]
UserId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]


@router.get("/stats", summary="Counters of many posts and whether the viewer liked each, in one query")
async def post_stats(query: Annotated[StatsQuery, Query()], session: SessionDep, settings: SettingsDep) -> Response:
    return ok(await ReactionService(session, settings).stats(query.ids, query.viewer_id))


@router.put("/{post_id}/likes/{user_id}", summary="Like a post (idempotent)")
async def like(
    post_id: PostId, user_id: UserId, session: SessionDep, settings: SettingsDep, posts: PostsDep
) -> Response:
    return ok(await ReactionService(session, settings, posts).like(post_id, user_id))


@router.delete("/{post_id}/likes/{user_id}", summary="Take a like back (idempotent)")
async def unlike(post_id: PostId, user_id: UserId, session: SessionDep, settings: SettingsDep) -> Response:
    return ok(await ReactionService(session, settings).unlike(post_id, user_id))


@router.get("/{post_id}/likes", summary="Who liked the post, newest first, with an opaque cursor")
async def likers(
    post_id: PostId,
    query: Annotated[PageQuery, Query()],
    session: SessionDep,
    settings: SettingsDep,
    posts: PostsDep,
) -> Response:
    return ok(await ReactionService(session, settings, posts).likers(post_id, query.cursor, query.limit))


@router.post("/{post_id}/views", summary="Count a view: once per user, post and window")
async def view(
    post_id: PostId, body: ViewBody, session: SessionDep, settings: SettingsDep, posts: PostsDep
) -> Response:
    return ok(await ReactionService(session, settings, posts).view(post_id, body.user_id))
