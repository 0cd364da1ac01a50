from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.responses import Response

from pinstack_activity.comments.schemas import CommentsQuery, CreateComment, DeleteQuery
from pinstack_activity.comments.service import CommentService
from pinstack_activity.deps import PostsDep, SessionDep, SettingsDep
from pinstack_contracts.limits import ID_MAX, ID_MIN
from pinstack_kit.envelope import ok

router = APIRouter(tags=["comments"])

Id = Annotated[int, Path(ge=ID_MIN, le=ID_MAX)]


@router.post("/posts/{post_id}/comments", status_code=201, summary="Comment on a post, or reply to a comment")
async def create_comment(
    post_id: Id, body: CreateComment, session: SessionDep, settings: SettingsDep, posts: PostsDep
) -> Response:
    return ok(await CommentService(session, settings, posts).create(post_id, body), status=201)


@router.get("/posts/{post_id}/comments", summary="A post's comments (or a comment's replies), oldest first")
async def list_comments(
    post_id: Id,
    query: Annotated[CommentsQuery, Query()],
    session: SessionDep,
    settings: SettingsDep,
    posts: PostsDep,
) -> Response:
    service = CommentService(session, settings, posts)
    return ok(await service.list_comments(post_id, query.parent_id, query.cursor, query.limit))


@router.delete("/comments/{comment_id}", summary="Delete a comment and its replies: its author or the post's")
async def delete_comment(
    comment_id: Id, query: Annotated[DeleteQuery, Query()], session: SessionDep, settings: SettingsDep
) -> Response:
    await CommentService(session, settings).delete(comment_id, query.user_id)
    return ok()
