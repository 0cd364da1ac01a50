from typing import Annotated

from pinstack_activity.config import Settings
from pinstack_kit.deps import SessionDep, from_state

SettingsDep = Annotated[Settings, from_state("settings")]

__all__ = ["SessionDep", "SettingsDep"]
