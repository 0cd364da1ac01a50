from typing import Annotated

from pinstack_kit.deps import RedisDep, SessionDep, from_state
from pinstack_kit.http_client import ServiceClient
from pinstack_posts.config import Settings

SettingsDep = Annotated[Settings, from_state("settings")]
UsersDep = Annotated[ServiceClient, from_state("users")]

__all__ = ["RedisDep", "SessionDep", "SettingsDep", "UsersDep"]
