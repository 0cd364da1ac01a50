from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pinstack_kit.validation import INT64_MAX

Id = Annotated[int, Field(ge=1, le=INT64_MAX)]


def _readable(value: str) -> str:
    # PostgreSQL text cannot hold NUL; a comment of blanks says nothing.
    if "\x00" in value or not value.strip():
        raise ValueError("empty or NUL")
    return value


Content = Annotated[str, StringConstraints(min_length=1, max_length=2000), AfterValidator(_readable)]


class CreateComment(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)

    author_id: Id
    content: Content
    parent_id: Id | None = None


class CommentsQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=200)
    parent_id: int | None = Field(None, ge=1, le=INT64_MAX, description="replies to this comment; absent: top level")


class DeleteQuery(BaseModel):
    user_id: int = Field(ge=1, le=INT64_MAX)
