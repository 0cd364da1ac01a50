"""Register, login, refresh with rotation and reuse detection, logout, password change."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_auth.errors import InvalidRefreshToken, RefreshTokenReused
from pinstack_auth.keys.signing import SigningKeys
from pinstack_auth.sessions import repository
from pinstack_kit import deadline
from pinstack_kit.errors import Unauthorized
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.jwt import TokenError, TokenExpired, decode


class SessionService:
    def __init__(self, session: AsyncSession, keys: SigningKeys, users: ServiceClient) -> None:
        self.session = session
        self.keys = keys
        self.users = users

    async def _open(self, user_id: int, family_id: uuid.UUID | None = None) -> dict[str, str]:
        family = family_id or uuid.uuid4()
        pair = self.keys.issue(user_id, family)
        await repository.add(self.session, pair.refresh_jti, family, user_id, pair.refresh_expires_at)
        return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}

    async def register(self, body: dict[str, Any]) -> dict[str, str]:
        created = await self.users.call("POST", "/users", json=body)
        # The account exists now: its first session is opened whatever the time, else the client
        # would get an error for an account it can no longer register (the users service gave us
        # a margin of the deadline for this).
        deadline.must_finish()
        return await self._open(int(created.json()["data"]["id"]))

    async def login(self, login: str, password: str) -> dict[str, str]:
        verified = await self.users.call("POST", "/credentials/verify", json={"login": login, "password": password})
        return await self._open(int(verified.json()["data"]["user_id"]))

    def _claims(self, token: str) -> dict[str, Any]:
        return decode(token, self.keys.verification_keys(), token_type="refresh", issuer=self.keys.issuer)

    async def refresh(self, token: str) -> dict[str, str]:
        try:
            claims = self._claims(token)
        except TokenExpired as exc:
            raise Unauthorized() from exc  # the contract answers `unauthenticated` here
        except TokenError as exc:
            raise InvalidRefreshToken() from exc
        row = await repository.lock(self.session, _jti(claims))
        if row is None or row.revoked_at is not None:
            raise InvalidRefreshToken()  # a deleted account's sessions too: they ended with it
        if row.rotated_at is not None:
            # A rotated token presented again: someone holds a copy. End the whole login.
            await repository.revoke_family(self.session, row.family_id, "reuse_detected")
            raise RefreshTokenReused()
        if await self.users.find(f"/users/{row.user_id}") is None:
            # Deleted, and `user_deleted` not consumed yet: the session is over all the same.
            raise InvalidRefreshToken()
        await repository.mark_rotated(self.session, row.jti)
        return await self._open(row.user_id, row.family_id)

    async def logout(self, token: str) -> str | None:
        """The session (token family) that ended, for the gateway to refuse its access tokens;
        None for an expired token, which ended by itself."""
        try:
            claims = self._claims(token)
        except TokenExpired:
            return None  # an expired token is already as logged out as it gets
        except TokenError as exc:
            raise InvalidRefreshToken() from exc
        row = await repository.lock(self.session, _jti(claims))
        if row is None or row.revoked_at is not None or row.rotated_at is not None:
            raise InvalidRefreshToken()
        await repository.revoke_family(self.session, row.family_id, "logout")
        return str(row.family_id)

    async def update_password(self, user_id: int, old_password: str, new_password: str) -> None:
        await self.users.call(
            "PUT", f"/users/{user_id}/password", json={"old_password": old_password, "new_password": new_password}
        )
        deadline.must_finish()  # the password changed: the old sessions end, late or not
        await repository.revoke_user(self.session, user_id, "password_changed")


def _jti(claims: dict[str, Any]) -> uuid.UUID:
    try:
        return uuid.UUID(str(claims.get("jti")))
    except ValueError as exc:
        raise InvalidRefreshToken() from exc
