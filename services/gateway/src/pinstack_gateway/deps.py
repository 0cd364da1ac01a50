"""Authentication (contract §1.1 order of checks) and the backend clients."""

from typing import Annotated, Any

from fastapi import Depends, Request

from pinstack_gateway.limits import limit_writes
from pinstack_gateway.sessions import Revocations
from pinstack_kit.deps import from_state
from pinstack_kit.errors import ServiceUnavailable, Unauthorized
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.jwt import JWKSVerifier, KeysUnavailable, TokenError


def revocations(request: Request) -> Revocations:
    found: Revocations = request.app.state.revocations
    return found


async def authenticate(state: Any, header: str | None) -> dict[str, Any]:
    """The claims of the `Authorization` header's access token, checked against the app state's
    verifier (signature once per token, expiry every time) and ended sessions; the contract's
    401 (or 503 without keys or Redis) otherwise. The response cache checks a kept feed page's
    token with it too."""
    if not header:
        raise Unauthorized("unauthenticated")
    parts = header.split(" ")
    if len(parts) != 2 or parts[0] != "Bearer":
        raise Unauthorized("invalid token")
    verifier: JWKSVerifier = state.verifier
    try:
        claims = await verifier.verify(parts[1])
    except TokenError as exc:
        raise Unauthorized(exc.message) from exc
    except KeysUnavailable as exc:
        raise ServiceUnavailable() from exc
    sessions: Revocations = state.revocations
    await sessions.check(claims)
    return claims


async def _current_user(request: Request) -> int:
    claims = await authenticate(request.app.state, request.headers.get("authorization"))
    request.state.user_id = int(claims["user_id"])
    await limit_writes(request, request.state.user_id)
    return request.state.user_id


CurrentUser = Annotated[int, Depends(_current_user)]
UsersDep = Annotated[ServiceClient, from_state("users")]
AuthDep = Annotated[ServiceClient, from_state("auth")]
PostsDep = Annotated[ServiceClient, from_state("posts")]
RelationsDep = Annotated[ServiceClient, from_state("relations")]
NotificationsDep = Annotated[ServiceClient, from_state("notifications")]
FeedDep = Annotated[ServiceClient, from_state("feed")]
ActivityDep = Annotated[ServiceClient, from_state("activity")]
