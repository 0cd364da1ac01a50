"""Request bodies of the users service (internal API; the gateway applies the public contract)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pinstack_kit.cursors import MAX_CURSOR_LENGTH
from pinstack_kit.validation import check_email, check_url

Username = Annotated[str, StringConstraints(min_length=3, max_length=32)]
Email = Annotated[str, StringConstraints(max_length=254), AfterValidator(check_email)]
Url = Annotated[str, StringConstraints(max_length=2048), AfterValidator(check_url)]
FullName = Annotated[str, StringConstraints(max_length=100)]
Bio = Annotated[str, StringConstraints(max_length=500)]
Password = Annotated[str, StringConstraints(min_length=6, max_length=256)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class CreateUser(Strict):
    username: Username
    email: Email
    password: Password
    full_name: FullName | None = None
    bio: Bio | None = None
    avatar_url: Url | None = None


class UpdateUser(Strict):
    username: Username | None = None
    email: Email | None = None
    full_name: FullName | None = None
    bio: Bio | None = None


class UpdateAvatar(Strict):
    avatar_url: Url


class SearchQuery(BaseModel):  # query strings are text: numbers are parsed, not strict
    query: str = Field(min_length=1, max_length=100)
    page: int = Field(1, ge=1, le=1_000_000)
    limit: int = Field(10, ge=1, le=100)
    cursor: str = Field(
        "", max_length=MAX_CURSOR_LENGTH, description="X-Next-Cursor of the previous page; empty: page numbers"
    )
