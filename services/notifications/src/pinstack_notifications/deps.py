from typing import Annotated

from pinstack_kit.deps import SessionDep, from_state
from pinstack_kit.http_client import ServiceClient

UsersDep = Annotated[ServiceClient, from_state("users")]

__all__ = ["SessionDep", "UsersDep"]
