from pydantic import BaseModel, Field

from pinstack_gateway.fields import Body, Email, NewPassword, Password, Url


class RegisterRequest(Body):
    username: str = Field("", min_length=3, max_length=32)
    email: Email = ""
    password: NewPassword = ""
    full_name: str | None = Field(None, max_length=100)
    bio: str | None = Field(None, max_length=500)
    avatar_url: Url | None = None


class LoginRequest(Body):
    login: str = Field("", min_length=1, max_length=254, description="username, or email when it looks like one")
    password: Password = ""


class RefreshTokenRequest(Body):
    refresh_token: str = Field("", min_length=1, max_length=4096)


class UpdatePasswordRequest(Body):
    old_password: Password = ""
    new_password: NewPassword = ""


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
