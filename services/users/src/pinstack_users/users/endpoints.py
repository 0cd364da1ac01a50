from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.cursors import page_response
from pinstack_kit.envelope import no_content, ok, ok_raw
from pinstack_users.deps import RedisDep, SessionDep, SettingsDep
from pinstack_users.users.schemas import CreateUser, SearchQuery, UpdateAvatar, UpdateUser
from pinstack_users.users.service import UserService

router = APIRouter(prefix="/users", tags=["users"])

UserId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]


@router.post("", status_code=201)
async def create_user(body: CreateUser, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    user = await UserService(session, redis, settings).create(body.model_dump())
    return ok(user, status=201)


@router.get("/search")
async def search_users(
    query: Annotated[SearchQuery, Query()], session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    service = UserService(session, redis, settings)
    page, next_cursor = await service.search(query.query, query.page, query.limit, query.cursor)
    return page_response(page, next_cursor, cursor_mode=bool(query.cursor))


@router.get("/by-username/{username}")
async def get_by_username(username: str, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    return ok_raw(await UserService(session, redis, settings).get_by_username(username))


@router.get("/by-email/{email}")
async def get_by_email(email: str, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    return ok_raw(await UserService(session, redis, settings).get_by_email(email))


@router.get("/{user_id}")
async def get_user(user_id: UserId, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    return ok_raw(await UserService(session, redis, settings).get(user_id))


@router.patch("/{user_id}")
async def update_user(
    user_id: UserId, body: UpdateUser, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    values = body.model_dump(exclude_unset=True)
    return ok(await UserService(session, redis, settings).update(user_id, values))


@router.put("/{user_id}/avatar")
async def update_avatar(
    user_id: UserId, body: UpdateAvatar, session: SessionDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    return ok(await UserService(session, redis, settings).update(user_id, {"avatar_url": body.avatar_url}))


@router.delete("/{user_id}", status_code=204)
async def delete_user(user_id: UserId, session: SessionDep, redis: RedisDep, settings: SettingsDep) -> Response:
    await UserService(session, redis, settings).delete(user_id)
    return no_content()
