from typing import Annotated

from fastapi import Depends, Request

from pinstack_kit.deps import SessionDep
from pinstack_kit.http_client import ServiceClient
from pinstack_relations.config import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _users(request: Request) -> ServiceClient:
    return request.app.state.users


SettingsDep = Annotated[Settings, Depends(_settings)]
UsersDep = Annotated[ServiceClient, Depends(_users)]

__all__ = ["SessionDep", "SettingsDep", "UsersDep"]
