"""Contract routes 6-13: read, search, create, update, delete users and set avatars."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pinstack_gateway.body import json_body
from pinstack_gateway.deps import CurrentUser, UsersDep, revocations
from pinstack_gateway.fields import MAX_USERNAME, MIN_USERNAME, documented
from pinstack_gateway.params import CursorQuery, lenient_int, positive_id
from pinstack_gateway.proxy import forward, forward_page
from pinstack_gateway.users.schemas import (
    CreateUserRequest,
    UpdateAvatarRequest,
    UpdateUserRequest,
    User,
    UsersPage,
)
from pinstack_kit.envelope import ok
from pinstack_kit.errors import BadRequest, Forbidden
from pinstack_kit.validation import SIMPLE_EMAIL

CreateUserBody = Annotated[CreateUserRequest, json_body(CreateUserRequest)]
UpdateUserBody = Annotated[UpdateUserRequest, json_body(UpdateUserRequest)]
UpdateAvatarBody = Annotated[UpdateAvatarRequest, json_body(UpdateAvatarRequest)]

router = APIRouter(prefix="/api/v1/users", tags=["users"])

MAX_QUERY_LENGTH = 100


@router.get("/search", summary="Search users by username, email or full name", **documented(200, UsersPage, 400))
async def search_users(
    request: Request,
    users: UsersDep,
    query: Annotated[str | None, Query(description=f"required; 1-{MAX_QUERY_LENGTH} characters")] = None,
    page: Annotated[str | None, Query(description="1-1000000; anything else: 1")] = None,
    limit: Annotated[str | None, Query(description="1-100; anything else: 10")] = None,
    cursor: CursorQuery = None,
) -> Response:
    if not query or len(query) > MAX_QUERY_LENGTH or "\x00" in query:
        raise BadRequest("invalid search query")
    page_number = lenient_int(page, 1, 1, 1_000_000)
    size = lenient_int(limit, 10, 1, 100)
    upstream: dict[str, Any] = {"query": query, "page": page_number, "limit": size}
    if cursor:
        upstream["cursor"] = cursor
    return await forward_page(request, users, "/users/search", upstream, position=("page",))


@router.get("/username/{username}", summary="User by username", **documented(200, User, 400, 404))
async def get_by_username(username: str, users: UsersDep) -> Response:
    # No account can have such a name; upstream's user service refused it with a 500 (§7.7).
    if not MIN_USERNAME <= len(username) <= MAX_USERNAME or "\x00" in username:
        raise BadRequest()
    return await forward(users, "GET", f"/users/by-username/{quote(username, safe='')}")


@router.get("/email/{email}", summary="User by email", **documented(200, User, 400, 404))
async def get_by_email(email: str, users: UsersDep) -> Response:
    if not SIMPLE_EMAIL.fullmatch(email):
        raise BadRequest()
    return await forward(users, "GET", f"/users/by-email/{quote(email, safe='')}")


@router.get("/{user_id}", summary="User by id", **documented(200, User, 400, 404))
async def get_user(user_id: str, users: UsersDep) -> Response:
    return await forward(users, "GET", f"/users/{positive_id(user_id)}")


@router.post("", summary="Create a user", **documented(201, User, 400, 401, 409))
async def create_user(
    _: CurrentUser,
    body: CreateUserBody,
    users: UsersDep,
) -> Response:
    return await forward(users, "POST", "/users", json=body.model_dump(exclude_none=True))


@router.put("", summary="Update the caller's profile", **documented(200, User, 400, 401, 403, 404, 409))
async def update_user(
    caller: CurrentUser,
    body: UpdateUserBody,
    users: UsersDep,
) -> Response:
    if body.id != caller:
        raise Forbidden()
    # Empty username/email mean "unchanged"; full_name and bio are written whenever present.
    changes = {k: v for k, v in body.model_dump(exclude={"id"}).items() if v is not None}
    for key in ("username", "email"):
        if changes.get(key) == "":
            del changes[key]
    return await forward(users, "PATCH", f"/users/{caller}", json=changes)


@router.delete("/{user_id}", summary="Delete the caller's account", **documented(204, None, 400, 401, 403, 404))
async def delete_user(request: Request, caller: CurrentUser, user_id: str, users: UsersDep) -> Response:
    if positive_id(user_id) != caller:
        raise Forbidden()
    response = await forward(users, "DELETE", f"/users/{caller}")
    await revocations(request).end_account(caller)
    return response


@router.put("/avatar", summary="Set the caller's avatar URL", **documented(200, None, 400, 401, 404))
async def update_avatar(
    caller: CurrentUser,
    body: UpdateAvatarBody,
    users: UsersDep,
) -> Response:
    await forward(users, "PUT", f"/users/{caller}/avatar", json=body.model_dump())
    return ok()
