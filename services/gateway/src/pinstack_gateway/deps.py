"""Authentication (contract §1.1 order of checks) and the backend clients."""

from typing import Annotated

from fastapi import Depends, Request

from pinstack_kit.errors import ServiceUnavailable, Unauthorized
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.jwt import JWKSVerifier, KeysUnavailable, TokenError


async def _current_user(request: Request) -> int:
    header = request.headers.get("authorization")
    if not header:
        raise Unauthorized("unauthenticated")
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer":
        raise Unauthorized("invalid token")
    verifier: JWKSVerifier = request.app.state.verifier
    try:
        claims = await verifier.verify(parts[1])
    except TokenError as exc:
        raise Unauthorized(exc.message) from exc
    except KeysUnavailable as exc:
        raise ServiceUnavailable() from exc
    request.state.user_id = int(claims["user_id"])
    return request.state.user_id


def _users(request: Request) -> ServiceClient:
    return request.app.state.users


def _auth(request: Request) -> ServiceClient:
    return request.app.state.auth


CurrentUser = Annotated[int, Depends(_current_user)]
UsersDep = Annotated[ServiceClient, Depends(_users)]
AuthDep = Annotated[ServiceClient, Depends(_auth)]
