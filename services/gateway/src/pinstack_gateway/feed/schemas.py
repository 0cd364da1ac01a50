from pydantic import BaseModel, Field

from pinstack_gateway.posts.schemas import Post


class FeedItem(Post):
    """A post as `GET /posts/{id}` shows it, with its counters and the caller's like."""

    like_count: int
    comment_count: int
    view_count: int
    liked: bool = Field(description="whether the caller likes the post")


class FeedPage(BaseModel):
    items: list[FeedItem] = Field(description="newest first")
    next_cursor: str | None = Field(None, description="pass back as `cursor` for the next page; null: the last page")
