from pydantic import BaseModel, Field

from pinstack_contracts.limits import COMMENT_MAX, COMMENT_MIN, ID_MIN
from pinstack_gateway.fields import Body, Int64


class CreateCommentRequest(Body):
    # the activity service refuses blank content
    content: str = Field("", min_length=COMMENT_MIN, max_length=COMMENT_MAX, json_schema_extra={"pattern": r"\S"})
    parent_id: Int64 | None = Field(None, ge=ID_MIN, description="the comment this one replies to")


class LikeState(BaseModel):
    liked: bool
    like_count: int


class Like(BaseModel):
    user_id: int
    created_at: str


class LikesPage(BaseModel):
    likes: list[Like] = Field(description="newest first")
    next_cursor: str | None = None


class Comment(BaseModel):
    id: int
    post_id: int
    author_id: int
    parent_id: int | None = None
    content: str
    created_at: str
    reply_count: int


class CommentsPage(BaseModel):
    comments: list[Comment] = Field(description="oldest first")
    next_cursor: str | None = None


class ViewCounted(BaseModel):
    counted: bool = Field(description="false when the caller's view of this post was already counted in this window")
    view_count: int
