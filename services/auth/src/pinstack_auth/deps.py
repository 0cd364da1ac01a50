from typing import Annotated

from fastapi import Depends, Request

from pinstack_auth.keys.signing import SigningKeys
from pinstack_kit.deps import SessionDep
from pinstack_kit.http_client import ServiceClient


def _keys(request: Request) -> SigningKeys:
    return request.app.state.keys


def _users(request: Request) -> ServiceClient:
    return request.app.state.users


KeysDep = Annotated[SigningKeys, Depends(_keys)]
UsersDep = Annotated[ServiceClient, Depends(_users)]

__all__ = ["KeysDep", "SessionDep", "UsersDep"]
