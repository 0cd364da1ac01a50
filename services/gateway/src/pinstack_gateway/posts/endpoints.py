"""Contract routes 14-18: list, read, create, update and delete posts. The author of a new or
changed post is the caller from the token, never a value of the body."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from pinstack_contracts.limits import PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX
from pinstack_gateway.body import json_body
from pinstack_gateway.deps import CurrentUser, PostsDep
from pinstack_gateway.fields import documented
from pinstack_gateway.idempotency import IdempotencyKey, idempotent
from pinstack_gateway.params import CursorQuery, is_rfc3339, path_id, positive_id, query_int
from pinstack_gateway.posts.schemas import CreatedPost, CreatePostRequest, Post, PostsPage, UpdatePostRequest
from pinstack_gateway.proxy import forward, forward_page
from pinstack_kit.errors import BadRequest

CreatePostBody = Annotated[CreatePostRequest, json_body(CreatePostRequest)]
UpdatePostBody = Annotated[UpdatePostRequest, json_body(UpdatePostRequest)]

router = APIRouter(prefix="/api/v1/posts", tags=["posts"])


class PostValidationFailed(BadRequest):
    message = "post validation failed"


async def _post_id(post_id: str) -> int:
    """Parsed before the body is read: a bad id is `invalid input` whatever the body holds.
    (Async: FastAPI would run a plain function in a worker thread.)"""
    return path_id(post_id)


PostId = Annotated[int, Depends(_post_id)]


def _time(raw: str | None) -> str | None:
    if raw and not is_rfc3339(raw):
        raise BadRequest()
    return raw or None


@router.get("/list", summary="Newest posts first; `total` counts every match", **documented(200, PostsPage, 400))
async def list_posts(
    request: Request,
    posts: PostsDep,
    author_id: Annotated[str | None, Query(description="int64; 0 or absent: every author")] = None,
    created_after: Annotated[str | None, Query(description="RFC 3339; only posts strictly after")] = None,
    created_before: Annotated[str | None, Query(description="RFC 3339; only posts strictly before")] = None,
    offset: Annotated[str | None, Query(description="int64 ≥ 0")] = None,
    limit: Annotated[str | None, Query(description=f"0-{PAGE_SIZE_MAX}; 0 or absent: {PAGE_SIZE_DEFAULT}")] = None,
    cursor: CursorQuery = None,
) -> Response:
    # Parsing first, in upstream's order (`invalid input`; a bad time is `validation failed`),
    # then the ranges upstream left to its backend, which answered 500: `validation failed`.
    author = query_int(author_id)
    after, before = _time(created_after), _time(created_before)
    skip, size = query_int(offset), query_int(limit)
    if (author or 0) < 0 or (skip or 0) < 0 or not 0 <= (size or 0) <= PAGE_SIZE_MAX:
        raise BadRequest()
    params = {
        "author_id": author,
        "created_after": after,
        "created_before": before,
        "offset": skip,
        "limit": size,
        "cursor": cursor,
    }
    return await forward_page(request, posts, "/posts", {k: v for k, v in params.items() if v}, position=("offset",))


@router.get("/{post_id}", summary="A post with its author, media and tags", **documented(200, Post, 400, 404))
async def get_post(post_id: str, posts: PostsDep) -> Response:
    return await forward(posts, "GET", f"/posts/{positive_id(post_id, PostValidationFailed())}")


@router.post("", summary="Create a post written by the caller", **documented(201, CreatedPost, 400, 401, 404, 409))
async def create_post(
    request: Request, caller: CurrentUser, body: CreatePostBody, posts: PostsDep, key: IdempotencyKey
) -> Response:
    payload = {"author_id": caller, **body.model_dump(exclude_none=True)}
    return await idempotent(request, key, caller, body, lambda: forward(posts, "POST", "/posts", json=payload))


@router.put("/{post_id}", summary="Change the caller's post", **documented(200, Post, 400, 401, 403, 404))
async def update_post(caller: CurrentUser, post_id: PostId, body: UpdatePostBody, posts: PostsDep) -> Response:
    if post_id < 1:
        raise PostValidationFailed()
    payload = {"user_id": caller, **body.model_dump(exclude_none=True)}
    return await forward(posts, "PUT", f"/posts/{post_id}", json=payload)


@router.delete("/{post_id}", summary="Delete the caller's post", **documented(200, None, 400, 401, 403, 404))
async def delete_post(caller: CurrentUser, post_id: str, posts: PostsDep) -> Response:
    post = positive_id(post_id, PostValidationFailed())
    return await forward(posts, "DELETE", f"/posts/{post}", params={"user_id": caller})
