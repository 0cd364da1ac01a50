from typing import Annotated

from pinstack_kit.db import SessionDep
from pinstack_kit.deps import RedisDep, from_state
from pinstack_users.config import Settings

SettingsDep = Annotated[Settings, from_state("settings")]

__all__ = ["RedisDep", "SessionDep", "SettingsDep"]
