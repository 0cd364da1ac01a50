"""Contract routes 19-22: follow, unfollow, and the follower and followee lists. The follower is
always the caller from the token."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from pinstack_contracts.limits import PAGE_MAX, PAGE_MIN, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN
from pinstack_gateway.body import json_body
from pinstack_gateway.deps import CurrentUser, RelationsDep
from pinstack_gateway.fields import MessageData, documented
from pinstack_gateway.idempotency import IdempotencyKey, idempotent
from pinstack_gateway.params import CursorQuery, lenient_int, positive_id
from pinstack_gateway.proxy import forward_page
from pinstack_gateway.relations.schemas import FolloweesPage, FollowersPage, FollowRequest
from pinstack_kit.envelope import ok
from pinstack_kit.http_client import ServiceClient

FollowBody = Annotated[FollowRequest, json_body(FollowRequest)]

router = APIRouter(prefix="/api/v1/relation", tags=["relations"])

PageParam = Annotated[str | None, Query(description=f"int32 ≥ {PAGE_MIN}; anything else: {PAGE_MIN}")]
LimitParam = Annotated[
    str | None, Query(description=f"{PAGE_SIZE_MIN}-{PAGE_SIZE_MAX}; anything else: {PAGE_SIZE_DEFAULT}")
]


@router.post("/follow", summary="The caller follows a user", **documented(200, MessageData, 400, 401, 404, 409))
async def follow(
    request: Request, caller: CurrentUser, body: FollowBody, relations: RelationsDep, key: IdempotencyKey
) -> Response:
    async def write() -> Response:
        await relations.call("POST", "/follows", json={"follower_id": caller, "followee_id": body.followee_id})
        return ok({"message": "Followed successfully"})

    return await idempotent(request, key, caller, body, write)


@router.post("/unfollow", summary="The caller unfollows a user", **documented(200, MessageData, 400, 401, 404))
async def unfollow(caller: CurrentUser, body: FollowBody, relations: RelationsDep) -> Response:
    await relations.call("DELETE", "/follows", params={"follower_id": caller, "followee_id": body.followee_id})
    return ok({"message": "Unfollowed successfully"})


async def _related(
    request: Request,
    relations: ServiceClient,
    user_id: str,
    which: str,
    page: str | None,
    limit: str | None,
    cursor: str | None,
) -> Response:
    params: dict[str, Any] = {
        "page": lenient_int(page, PAGE_MIN, PAGE_MIN, PAGE_MAX),
        "limit": lenient_int(limit, PAGE_SIZE_DEFAULT, PAGE_SIZE_MIN, PAGE_SIZE_MAX),
    }
    if cursor:
        params["cursor"] = cursor
    path = f"/users/{positive_id(user_id)}/{which}"
    return await forward_page(request, relations, path, params, position=("page",))


@router.get(
    "/{user_id}/followers", summary="Who follows the user, newest first", **documented(200, FollowersPage, 400, 404)
)
async def followers(
    request: Request,
    user_id: str,
    relations: RelationsDep,
    page: PageParam = None,
    limit: LimitParam = None,
    cursor: CursorQuery = None,
) -> Response:
    return await _related(request, relations, user_id, "followers", page, limit, cursor)


@router.get(
    "/{user_id}/followees", summary="Whom the user follows, newest first", **documented(200, FolloweesPage, 400, 404)
)
async def followees(
    request: Request,
    user_id: str,
    relations: RelationsDep,
    page: PageParam = None,
    limit: LimitParam = None,
    cursor: CursorQuery = None,
) -> Response:
    return await _related(request, relations, user_id, "followees", page, limit, cursor)
