"""Likes and comments of posts. The liker, the commenter and the deleter are the caller from the
token, never a value of the body or the query."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from pinstack_contracts.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN
from pinstack_gateway.activity.schemas import (
    Comment,
    CommentsPage,
    CreateCommentRequest,
    LikesPage,
    LikeState,
    ViewCounted,
)
from pinstack_gateway.body import json_body
from pinstack_gateway.deps import ActivityDep, CurrentUser
from pinstack_gateway.fields import documented
from pinstack_gateway.idempotency import IdempotencyKey, idempotent
from pinstack_gateway.params import page_size, positive_id, query_int
from pinstack_gateway.proxy import forward
from pinstack_kit.errors import BadRequest

CreateCommentBody = Annotated[CreateCommentRequest, json_body(CreateCommentRequest)]

likes_router = APIRouter(prefix="/api/v1/posts", tags=["likes"])
comments_router = APIRouter(prefix="/api/v1", tags=["comments"])

LimitQuery = Annotated[str | None, Query(description=f"{PAGE_SIZE_MIN}-{PAGE_SIZE_MAX}; absent: {PAGE_SIZE_DEFAULT}")]
CursorQuery = Annotated[str | None, Query(description="`next_cursor` of the previous page")]


async def _id(post_id: str) -> int:
    """Parsed before the body is read. (Async: FastAPI would run a plain function in a thread.)"""
    return positive_id(post_id)


PostId = Annotated[int, Depends(_id)]


def _page(limit: str | None, cursor: str | None) -> dict[str, Any]:
    return {"limit": page_size(limit), **({"cursor": cursor} if cursor else {})}


@likes_router.put(
    "/{post_id}/like", summary="Like a post (idempotent)", **documented(200, LikeState, 400, 401, 404, 409)
)
async def like(
    request: Request, caller: CurrentUser, post_id: PostId, activity: ActivityDep, key: IdempotencyKey
) -> Response:
    return await idempotent(
        request, key, caller, None, lambda: forward(activity, "PUT", f"/posts/{post_id}/likes/{caller}")
    )


@likes_router.delete(
    "/{post_id}/like", summary="Take the caller's like back (idempotent)", **documented(200, LikeState, 400, 401, 404)
)
async def unlike(caller: CurrentUser, post_id: PostId, activity: ActivityDep) -> Response:
    return await forward(activity, "DELETE", f"/posts/{post_id}/likes/{caller}")


@likes_router.get(
    "/{post_id}/likes", summary="Who liked the post, newest first", **documented(200, LikesPage, 400, 404)
)
async def likers(
    post_id: PostId, activity: ActivityDep, limit: LimitQuery = None, cursor: CursorQuery = None
) -> Response:
    return await forward(activity, "GET", f"/posts/{post_id}/likes", params=_page(limit, cursor))


@likes_router.post(
    "/{post_id}/comments",
    summary="Comment on a post as the caller, or reply to one of its comments",
    **documented(201, Comment, 400, 401, 404, 409),
)
async def create_comment(
    request: Request,
    caller: CurrentUser,
    post_id: PostId,
    body: CreateCommentBody,
    activity: ActivityDep,
    key: IdempotencyKey,
) -> Response:
    payload = {"author_id": caller, **body.model_dump(exclude_none=True)}
    path = f"/posts/{post_id}/comments"
    return await idempotent(request, key, caller, body, lambda: forward(activity, "POST", path, json=payload))


@likes_router.post(
    "/{post_id}/view",
    summary="Count the caller's view of a post: once per user and post per window",
    **documented(200, ViewCounted, 400, 401, 404),
)
async def view(caller: CurrentUser, post_id: PostId, activity: ActivityDep) -> Response:
    return await forward(activity, "POST", f"/posts/{post_id}/views", json={"user_id": caller})


@likes_router.get(
    "/{post_id}/comments",
    summary="A post's comments (or a comment's replies), oldest first",
    **documented(200, CommentsPage, 400, 404),
)
async def list_comments(
    post_id: PostId,
    activity: ActivityDep,
    limit: LimitQuery = None,
    cursor: CursorQuery = None,
    parent_id: Annotated[str | None, Query(description="replies to this comment; absent: top level")] = None,
) -> Response:
    parent = query_int(parent_id)
    if parent is not None and parent < 1:
        raise BadRequest()
    params = {**_page(limit, cursor), **({"parent_id": parent} if parent is not None else {})}
    return await forward(activity, "GET", f"/posts/{post_id}/comments", params=params)


@comments_router.delete(
    "/comments/{comment_id}",
    summary="Delete a comment and its replies: its author or the post's",
    **documented(200, None, 400, 401, 403, 404),
)
async def delete_comment(caller: CurrentUser, comment_id: str, activity: ActivityDep) -> Response:
    return await forward(activity, "DELETE", f"/comments/{positive_id(comment_id)}", params={"user_id": caller})
