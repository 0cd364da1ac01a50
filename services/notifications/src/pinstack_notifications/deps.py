from typing import Annotated

from fastapi import Depends, Request

from pinstack_kit.deps import SessionDep
from pinstack_kit.http_client import ServiceClient


def _users(request: Request) -> ServiceClient:
    return request.app.state.users


UsersDep = Annotated[ServiceClient, Depends(_users)]

__all__ = ["SessionDep", "UsersDep"]
