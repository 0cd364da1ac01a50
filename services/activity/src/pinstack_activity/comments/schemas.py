from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pinstack_contracts.limits import (
    COMMENT_MAX,
    COMMENT_MIN,
    CURSOR_MAX,
    ID_MAX,
    ID_MIN,
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    PAGE_SIZE_MIN,
    Id,
)


def _readable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a comment of blanks says nothing.
    if "\x00" in value or not value.strip():
        raise ValueError("empty or NUL")
    return value


Content = Annotated[str, StringConstraints(min_length=COMMENT_MIN, max_length=COMMENT_MAX), AfterValidator(_readable)]


class CreateComment(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    author_id: Id
    content: Content
    parent_id: Id | None = None


class CommentsQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    limit: int = Field(PAGE_SIZE_DEFAULT, ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)
    cursor: str | None = Field(None, max_length=CURSOR_MAX)
    parent_id: int | None = Field(None, ge=ID_MIN, le=ID_MAX, description="replies to this comment; absent: top level")


class DeleteQuery(BaseModel):
    user_id: Id
