"""Request bodies and query of the posts service (internal API; the gateway applies the public
contract). Every broken rule is a 400 `validation failed`, never a 500 (contract §7)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from pinstack_contracts.limits import (
    CONTENT_MAX,
    CURSOR_MAX,
    ID_MAX,
    ID_MIN,
    MEDIA_MAX,
    MEDIA_URL_MAX,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    TAG_MAX,
    TAG_MIN,
    TAGS_MAX,
    TITLE_MAX,
    TITLE_MIN,
    Id,
)
from pinstack_kit.errors import BadRequest
from pinstack_kit.validation import INT64_MAX, check_url, parse_int


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL: refused here rather than failing as a 500 in the insert.
    if "\x00" in value:
        raise ValueError("NUL character")
    return value


def _distinct_tags(names: list[str]) -> list[str]:
    """Duplicates in one request collapse to the first occurrence (upstream failed with a 500)."""
    unique = list(dict.fromkeys(names))
    if len(unique) > TAGS_MAX:
        raise ValueError(f"at most {TAGS_MAX} tags")
    return unique


def _no_null_media(items: object) -> object:
    # Go decodes a `null` element into an empty item, which then fails validation.
    if isinstance(items, list) and any(item is None for item in items):
        raise ValueError("empty media item")
    return items


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


def parse_rfc3339(value: object) -> datetime:
    """Go's time.RFC3339 layout: date `T` time, optional fraction, `Z` or a numeric offset."""
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        try:
            return datetime.fromisoformat(value.upper())
        except ValueError:
            pass  # well-formed but impossible (month 13, second 61...)
    raise ValueError("not an RFC 3339 time")


Title = Annotated[str, StringConstraints(min_length=TITLE_MIN, max_length=TITLE_MAX), AfterValidator(_no_nul)]
Content = Annotated[str, StringConstraints(max_length=CONTENT_MAX), AfterValidator(_no_nul)]
TagName = Annotated[str, StringConstraints(min_length=TAG_MIN, max_length=TAG_MAX), AfterValidator(_no_nul)]
Tags = Annotated[list[TagName], AfterValidator(_distinct_tags)]
Url = Annotated[str, StringConstraints(max_length=MEDIA_URL_MAX), AfterValidator(check_url)]
Rfc3339 = Annotated[datetime, BeforeValidator(parse_rfc3339)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class MediaItem(Strict):
    url: Url
    type: Literal["image", "video"]
    position: int = Field(ge=1, le=MEDIA_MAX)


MediaItems = Annotated[list[MediaItem], Field(max_length=MEDIA_MAX), BeforeValidator(_no_null_media)]


class CreatePost(Strict):
    author_id: Id
    title: Title
    content: Content | None = None
    tags: Tags | None = None
    media_items: MediaItems | None = None


class UpdatePost(Strict):
    """Contract route 17: an empty or absent field leaves the stored value as it is."""

    user_id: Id
    title: Annotated[str, StringConstraints(max_length=TITLE_MAX), AfterValidator(_no_nul)] | None = None
    content: Content | None = None
    tags: Tags | None = None
    media_items: MediaItems | None = None


MAX_BATCH = PAGE_SIZE_MAX  # the gateway reads a whole feed page in one call


def _id_list(value: str) -> list[int]:
    """`1,2,3` → distinct ids in the order given, 1-100 of them, each an int64 ≥ 1."""
    ids = [parse_int(part.strip()) for part in value.split(",")] if value else []
    if not ids or len(ids) > MAX_BATCH or any(i is None or not ID_MIN <= i <= ID_MAX for i in ids):
        raise ValueError(f"1-{MAX_BATCH} comma-separated post ids")
    return list(dict.fromkeys(i for i in ids if i is not None))


class BatchQuery(BaseModel):
    ids: Annotated[str, StringConstraints(max_length=2100)] = Field(
        description=f"comma-separated post ids, at most {MAX_BATCH}"
    )

    def post_ids(self) -> list[int]:
        try:
            return _id_list(self.ids)
        except ValueError as exc:
            raise BadRequest() from exc


class ListQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    author_id: int = Field(0, ge=0, le=ID_MAX, description="0 or absent: every author")
    tag: str = Field("", max_length=TAG_MAX, description="tag name, case-insensitive; empty: any")
    created_after: Rfc3339 | None = None
    created_before: Rfc3339 | None = None
    offset: int = Field(0, ge=0, le=INT64_MAX)
    limit: int = Field(0, ge=0, le=PAGE_SIZE_MAX, description=f"0 or absent: {PAGE_SIZE_DEFAULT}")
    cursor: str = Field(
        "", max_length=CURSOR_MAX, description="X-Next-Cursor of the previous page; empty: offset paging"
    )
