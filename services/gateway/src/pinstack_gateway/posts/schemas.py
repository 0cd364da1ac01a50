from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field

from pinstack_contracts.limits import (
    CONTENT_MAX,
    MEDIA_MAX,
    MEDIA_URL_MAX,
    TAG_MAX,
    TAG_MIN,
    TAGS_MAX,
    TITLE_MAX,
    TITLE_MIN,
)
from pinstack_gateway.fields import Body, Int64, Url, declared

MEDIA_TYPES = ("image", "video")


def _media_type(value: str) -> str:
    if value not in MEDIA_TYPES:  # validator's `oneof=image video`: an exact match
        raise ValueError("type must be image or video")
    return value


def _null_is_empty(value: object) -> object:
    return "" if value is None else value  # Go decodes a `null` string element as ""


MediaUrl = Annotated[Url, Field(max_length=MEDIA_URL_MAX)]
MediaType = Annotated[str, AfterValidator(_media_type)]
# No gateway rule on tags or content; the posts service refuses empty or over-long names, more than
# TAGS_MAX distinct tags and over-long content (`validation failed`): the document says so.
Tags = Annotated[
    list[Annotated[str, BeforeValidator(_null_is_empty), declared(minLength=TAG_MIN, maxLength=TAG_MAX)]],
    declared(maxItems=TAGS_MAX, description=f"at most {TAGS_MAX} distinct names; repeated ones count once"),
]
Content = Annotated[str, declared(maxLength=CONTENT_MAX)]


class MediaItemRequest(Body):
    url: MediaUrl = ""
    type: MediaType = Field("", json_schema_extra={"enum": list(MEDIA_TYPES)})
    position: Int64 = Field(0, ge=1, le=MEDIA_MAX)


# A `null` element decodes into an empty item (Go's zero value), which then breaks the rules.
MediaItems = Annotated[list[MediaItemRequest], Field(max_length=MEDIA_MAX)]


class CreatePostRequest(Body):
    title: str = Field("", min_length=TITLE_MIN, max_length=TITLE_MAX)
    content: Content | None = None
    tags: Tags | None = None
    media_items: MediaItems | None = None


class UpdatePostRequest(Body):
    """Every field optional: empty or absent leaves the stored value as it is."""

    title: str | None = Field(None, max_length=TITLE_MAX)
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
