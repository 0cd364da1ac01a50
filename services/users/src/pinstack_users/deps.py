from typing import Annotated

from fastapi import Depends, Request

from pinstack_kit.deps import RedisDep, SessionDep
from pinstack_users.config import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(_settings)]

__all__ = ["RedisDep", "SessionDep", "SettingsDep"]
