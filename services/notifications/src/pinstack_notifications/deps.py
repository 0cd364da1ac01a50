from typing import Annotated

from pinstack_kit.db import SessionDep
from pinstack_kit.deps import from_state
from pinstack_kit.http_client import ServiceClient

UsersDep = Annotated[ServiceClient, from_state("users")]

__all__ = ["SessionDep", "UsersDep"]
