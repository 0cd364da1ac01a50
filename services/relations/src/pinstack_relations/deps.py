from typing import Annotated

from pinstack_kit.db import SessionDep
from pinstack_kit.deps import from_state
from pinstack_kit.http_client import ServiceClient
from pinstack_relations.config import Settings

SettingsDep = Annotated[Settings, from_state("settings")]
UsersDep = Annotated[ServiceClient, from_state("users")]

__all__ = ["SessionDep", "SettingsDep", "UsersDep"]
