from typing import Annotated

from pinstack_activity.config import Settings
from pinstack_kit.db import SessionDep
from pinstack_kit.deps import from_state
from pinstack_kit.http_client import ServiceClient

SettingsDep = Annotated[Settings, from_state("settings")]
PostsDep = Annotated[ServiceClient, from_state("posts")]

__all__ = ["PostsDep", "SessionDep", "SettingsDep"]
