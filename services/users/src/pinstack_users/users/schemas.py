"""Request bodies of the users service (internal API; the gateway applies the public contract)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from pinstack_contracts.limits import (
    AVATAR_URL_MAX,
    BIO_MAX,
    CURSOR_MAX,
    EMAIL_MAX,
    FULL_NAME_MAX,
    PAGE_MIN,
    PAGE_SIZE_MAX,
    PAGE_SIZE_MIN,
    PASSWORD_MAX,
    PASSWORD_MIN,
    SEARCH_PAGE_MAX,
    SEARCH_PAGE_SIZE_DEFAULT,
    SEARCH_QUERY_MAX,
    SEARCH_QUERY_MIN,
    USERNAME_MAX,
    USERNAME_MIN,
)
from pinstack_kit.validation import check_email, check_url

Username = Annotated[str, StringConstraints(min_length=USERNAME_MIN, max_length=USERNAME_MAX)]
Email = Annotated[str, StringConstraints(max_length=EMAIL_MAX), AfterValidator(check_email)]
Url = Annotated[str, StringConstraints(max_length=AVATAR_URL_MAX), AfterValidator(check_url)]
FullName = Annotated[str, StringConstraints(max_length=FULL_NAME_MAX)]
Bio = Annotated[str, StringConstraints(max_length=BIO_MAX)]
Password = Annotated[str, StringConstraints(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]


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
    query: str = Field(min_length=SEARCH_QUERY_MIN, max_length=SEARCH_QUERY_MAX)
    page: int = Field(PAGE_MIN, ge=PAGE_MIN, le=SEARCH_PAGE_MAX)
    limit: int = Field(SEARCH_PAGE_SIZE_DEFAULT, ge=PAGE_SIZE_MIN, le=PAGE_SIZE_MAX)
    cursor: str = Field(
        "", max_length=CURSOR_MAX, description="X-Next-Cursor of the previous page; empty: page numbers"
    )
