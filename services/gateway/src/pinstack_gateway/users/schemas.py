from pydantic import BaseModel, Field

from pinstack_gateway.fields import Body, Email, Int64, NewPassword, OptionalEmail, OptionalUsername, Url


class CreateUserRequest(Body):
    username: str = Field("", min_length=3, max_length=32)
    email: Email = ""
    password: NewPassword = ""
    full_name: str | None = Field(None, max_length=100)
    bio: str | None = Field(None, max_length=500)
    avatar_url: Url | None = None


class UpdateUserRequest(Body):
    id: Int64 = Field(0, ge=1)
    username: OptionalUsername | None = None
    email: OptionalEmail | None = None
    full_name: str | None = Field(None, max_length=100)
    bio: str | None = Field(None, max_length=500)


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
