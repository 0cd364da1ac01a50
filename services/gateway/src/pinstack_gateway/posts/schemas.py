from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from pinstack_gateway.fields import Body, Int64, Url, declared

MEDIA_TYPES = ("image", "video")


def _media_type(value: str) -> str:
    if value not in MEDIA_TYPES:  # validator's `oneof=image video`: an exact match
        raise ValueError("type must be image or video")
    return value


def _null_is_empty(value: object) -> object:
    return "" if value is None else value  # Go decodes a `null` string element as ""


MediaUrl = Annotated[Url, Field(max_length=512)]
MediaType = Annotated[str, AfterValidator(_media_type)]
# No gateway rule on tags or content; the posts service refuses empty or over-long names, more than
# ten distinct tags and over-long content (`validation failed`): the document says so.
Tags = Annotated[
    list[Annotated[str, BeforeValidator(_null_is_empty), declared(minLength=1, maxLength=50)]],
    declared(maxItems=10, description="at most 10 distinct names; repeated ones count once"),
]
Content = Annotated[str, declared(maxLength=200_000)]


class MediaItemRequest(Body):
    url: MediaUrl = ""
    type: MediaType = Field("", json_schema_extra={"enum": list(MEDIA_TYPES)})
    position: Int64 = Field(0, ge=1, le=9)


# A `null` element decodes into an empty item (Go's zero value), which then breaks the rules.
MediaItems = Annotated[list[MediaItemRequest], Field(max_length=9)]


class CreatePostRequest(Body):
    title: str = Field("", min_length=1, max_length=255)
    content: Content | None = None
    tags: Tags | None = None
    media_items: MediaItems | None = None


class UpdatePostRequest(Body):
    """Every field optional: empty or absent leaves the stored value as it is."""

    title: str | None = Field(None, max_length=255)
    content: Content | None = None
    tags: Tags | None = None
    media_items: MediaItems | None = None


class PostAuthor(BaseModel):
    id: int
    username: str
    full_name: str | None = None
    avatar_url: str | None = None


class MediaItem(BaseModel):
    id: int
    url: str
    type: str
    position: int


class Tag(BaseModel):
    id: int = Field(description="always 0")
    name: str


class Post(BaseModel):
    id: int
    author: PostAuthor
    title: str
    content: str | None = None
    created_at: str
    updated_at: str
    media: list[MediaItem] | None = None
    tags: list[Tag] | None = None


class PostsPage(BaseModel):
    posts: list[Post]
    total: int = Field(description="every matching post, not only this page")


class CreatedPost(BaseModel):
    id: int
    title: str
    content: str | None = None
    created_at: str
    updated_at: str
    author_id: int
    author_username: str
    author_email: str
    author_full_name: str | None = None
    author_bio: str | None = None
    author_avatar_url: str | None = None
    media: list[MediaItem] | None = None
    tags: list[Tag] | None = None
