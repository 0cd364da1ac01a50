"""Contract routes 6-13: read, search, create, update, delete users and set avatars."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pinstack_contracts.limits import (
    PAGE_MIN,
    PAGE_SIZE_MAX,
    PAGE_SIZE_MIN,
    SEARCH_PAGE_MAX,
    SEARCH_PAGE_SIZE_DEFAULT,
    SEARCH_QUERY_MAX,
    SEARCH_QUERY_MIN,
    USERNAME_MAX,
    USERNAME_MIN,
)
from pinstack_gateway.body import json_body
from pinstack_gateway.deps import CurrentUser, UsersDep, revocations
from pinstack_gateway.fields import documented
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


@router.get("/search", summary="Search users by username, email or full name", **documented(200, UsersPage, 400))
async def search_users(
    request: Request,
    users: UsersDep,
    query: Annotated[
        str | None, Query(description=f"required; {SEARCH_QUERY_MIN}-{SEARCH_QUERY_MAX} characters")
    ] = None,
    page: Annotated[str | None, Query(description=f"{PAGE_MIN}-{SEARCH_PAGE_MAX}; anything else: {PAGE_MIN}")] = None,
    limit: Annotated[
        str | None,
        Query(description=f"{PAGE_SIZE_MIN}-{PAGE_SIZE_MAX}; anything else: {SEARCH_PAGE_SIZE_DEFAULT}"),
    ] = None,
    cursor: CursorQuery = None,
) -> Response:
    if query is None or not SEARCH_QUERY_MIN <= len(query) <= SEARCH_QUERY_MAX or "\x00" in query:
        raise BadRequest("invalid search query")
    page_number = lenient_int(page, PAGE_MIN, PAGE_MIN, SEARCH_PAGE_MAX)
    size = lenient_int(limit, SEARCH_PAGE_SIZE_DEFAULT, PAGE_SIZE_MIN, PAGE_SIZE_MAX)
    upstream: dict[str, Any] = {"query": query, "page": page_number, "limit": size}
    if cursor:
        upstream["cursor"] = cursor
    return await forward_page(request, users, "/users/search", upstream, position=("page",))


@router.get("/username/{username}", summary="User by username", **documented(200, User, 400, 404))
async def get_by_username(username: str, users: UsersDep) -> Response:
    # No account can have such a name; upstream's user service refused it with a 500 (§7.7).
    if not USERNAME_MIN <= len(username) <= USERNAME_MAX or "\x00" in username:
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
