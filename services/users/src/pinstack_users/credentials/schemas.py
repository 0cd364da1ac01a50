from typing import Annotated

from pydantic import StringConstraints

from pinstack_contracts.limits import LOGIN_MAX, PASSWORD_MAX
from pinstack_users.users.schemas import Password, Strict


class VerifyCredentials(Strict):
    login: Annotated[str, StringConstraints(min_length=1, max_length=LOGIN_MAX)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX)]


class ChangePassword(Strict):
    old_password: Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX)]
    new_password: Password
