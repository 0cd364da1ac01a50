from typing import Annotated

from pinstack_auth.keys.signing import SigningKeys
from pinstack_kit.db import SessionDep
from pinstack_kit.deps import from_state
from pinstack_kit.http_client import ServiceClient

KeysDep = Annotated[SigningKeys, from_state("keys")]
UsersDep = Annotated[ServiceClient, from_state("users")]

__all__ = ["KeysDep", "SessionDep", "UsersDep"]
