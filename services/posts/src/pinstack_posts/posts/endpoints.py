from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.cursors import page_response
from pinstack_kit.envelope import ok, ok_raw
from pinstack_posts.deps import RedisDep, SessionDep, SettingsDep, UsersDep
from pinstack_posts.posts.schemas import BatchQuery, CreatePost, ListQuery, UpdatePost
from pinstack_posts.posts.service import PostService

router = APIRouter(prefix="/posts", tags=["posts"])

PostId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]
UserId = Annotated[int, Query(ge=ID_MIN, le=ID_MAX)]


@router.post("", status_code=201, summary="Create a post; answers the contract's flattened shape")
async def create_post(
    body: CreatePost, session: SessionDep, redis: RedisDep, settings: SettingsDep, users: UsersDep
) -> Response:
    return ok(await PostService(session, redis, settings).create(body, users), status=201)


@router.get("", summary="Newest posts first, filtered; `total` counts every match")
async def list_posts(
    query: Annotated[ListQuery, Query()], session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    page, next_cursor = await PostService(session, redis, settings).list_posts(query)
    return page_response(page, next_cursor, cursor_mode=bool(query.cursor))


@router.get("/batch", summary="Many posts by id, in the order asked; unknown ids are skipped")
async def batch_posts(
    query: Annotated[BatchQuery, Query()], session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    return ok_raw(await PostService(session, redis, settings).batch(query.post_ids()))


@router.get("/{post_id}", summary="A post with its author, media and tags")
async def get_post(post_id: PostId, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    return ok_raw(await PostService(session, redis, settings).get(post_id))


@router.put("/{post_id}", summary="Change a post; only its author may")
async def update_post(
    post_id: PostId, body: UpdatePost, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    return ok(await PostService(session, redis, settings).update(post_id, body))


@router.delete("/{post_id}", summary="Delete a post; only its author may")
async def delete_post(
    post_id: PostId, user_id: UserId, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    await PostService(session, redis, settings).delete(post_id, user_id)
    return ok()
