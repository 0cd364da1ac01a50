from typing import Annotated

from pydantic import StringConstraints

from pinstack_users.users.schemas import Password, Strict


class VerifyCredentials(Strict):
    login: Annotated[str, StringConstraints(min_length=1, max_length=254)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]


class ChangePassword(Strict):
    old_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password
