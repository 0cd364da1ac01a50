"""Request bodies of the auth service (internal API; the gateway applies the public contract)."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pinstack_contracts.limits import ID_MIN, LOGIN_MAX, PASSWORD_MAX, REFRESH_TOKEN_MAX

Token = Annotated[str, StringConstraints(min_length=1, max_length=REFRESH_TOKEN_MAX)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True)


class Register(Strict):
    """Relayed to the users service, which owns profiles and password hashes."""

    username: str
    email: str
    password: Secret
    full_name: str | None = None
    bio: str | None = None
    avatar_url: str | None = None


class Login(Strict):
    login: Annotated[str, StringConstraints(min_length=1, max_length=LOGIN_MAX)]
    password: Secret


class RefreshTokenBody(Strict):
    refresh_token: Token


class UpdatePassword(Strict):
    user_id: int = Field(ge=ID_MIN)  # the gateway's caller
    old_password: Secret
    new_password: Secret
