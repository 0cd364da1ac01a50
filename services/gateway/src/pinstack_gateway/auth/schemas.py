from pydantic import BaseModel, Field

from pinstack_contracts.limits import BIO_MAX, FULL_NAME_MAX, LOGIN_MAX, REFRESH_TOKEN_MAX, USERNAME_MAX, USERNAME_MIN
from pinstack_gateway.fields import Body, Email, NewPassword, Password, Url


class RegisterRequest(Body):
    username: str = Field("", min_length=USERNAME_MIN, max_length=USERNAME_MAX)
    email: Email = ""
    password: NewPassword = ""
    full_name: str | None = Field(None, max_length=FULL_NAME_MAX)
    bio: str | None = Field(None, max_length=BIO_MAX)
    avatar_url: Url | None = None


class LoginRequest(Body):
    login: str = Field("", min_length=1, max_length=LOGIN_MAX, description="username, or email when it looks like one")
    password: Password = ""


class RefreshTokenRequest(Body):
    refresh_token: str = Field("", min_length=1, max_length=REFRESH_TOKEN_MAX)


class UpdatePasswordRequest(Body):
    old_password: Password = ""
    new_password: NewPassword = ""


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
