from pydantic import BaseModel, Field

from pinstack_contracts.limits import BIO_MAX, FULL_NAME_MAX, ID_MIN, USERNAME_MAX, USERNAME_MIN
from pinstack_gateway.fields import Body, Email, Int64, NewPassword, OptionalEmail, OptionalUsername, Url


class CreateUserRequest(Body):
    username: str = Field("", min_length=USERNAME_MIN, max_length=USERNAME_MAX)
    email: Email = ""
    password: NewPassword = ""
    full_name: str | None = Field(None, max_length=FULL_NAME_MAX)
    bio: str | None = Field(None, max_length=BIO_MAX)
    avatar_url: Url | None = None


class UpdateUserRequest(Body):
    id: Int64 = Field(0, ge=ID_MIN)
    username: OptionalUsername | None = None
    email: OptionalEmail | None = None
    full_name: str | None = Field(None, max_length=FULL_NAME_MAX)
    bio: str | None = Field(None, max_length=BIO_MAX)


class UpdateAvatarRequest(Body):
    avatar_url: Url = ""


class User(BaseModel):
    id: int
    username: str
    email: str
    full_name: str | None = None
    bio: str | None = None
    avatar_url: str | None = None
    created_at: str
    updated_at: str


class UsersPage(BaseModel):
    users: list[User]
    total: int
