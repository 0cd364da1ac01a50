"""Access-token verification against the auth service's JWKS (asymmetric keys, local checks).

The messages follow the upstream contract: an unparsable token is `invalid token`, an expired
one `token expired`, anything else (bad signature, wrong algorithm, wrong type) `unauthenticated`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import jwt
from jwt import PyJWKSet

ALGORITHMS = ["EdDSA"]
LEEWAY_SECONDS = 5
VERIFIED_CACHE_SIZE = 4096  # tokens whose signature was checked, reused until they expire


class TokenError(Exception):
    message = "unauthenticated"


class TokenMalformed(TokenError):
    message = "invalid token"


class TokenExpired(TokenError):
    message = "token expired"


def keys_from_jwks(document: dict[str, Any]) -> dict[str, Any]:
    return {k.key_id: k.key for k in PyJWKSet.from_dict(document).keys if k.key_id}


def decode(token: str, keys: dict[str, Any], *, token_type: str, issuer: str) -> dict[str, Any]:
    """Verify signature, expiry, issuer and `typ`; raise the contract's `TokenError`s."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError as exc:
        raise TokenMalformed() from exc
    key = keys.get(str(header.get("kid")))
    if key is None or header.get("alg") not in ALGORITHMS:
        raise TokenError()
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            issuer=issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "typ", "sub"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenExpired() from exc
    except jwt.InvalidSignatureError as exc:
        raise TokenError() from exc
    except jwt.DecodeError as exc:
        raise TokenMalformed() from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError() from exc
    if claims.get("typ") != token_type:
        raise TokenError()
    return claims


class JWKSVerifier:
    """Keeps the JWKS in memory; refetches (at most every `min_refresh` s) on an unknown `kid`."""

    def __init__(self, url: str, *, issuer: str) -> None:
        self.url = url
        self.issuer = issuer
        self.keys: dict[str, Any] = {}
        self.min_refresh = 30.0
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()
        self._session: aiohttp.ClientSession | None = None
        # A client sends the same token with every request: its signature is checked once (a
        # tenth of a gateway request's CPU), its expiry on every use. Oldest entries go first.
        self._verified: dict[tuple[str, str], dict[str, Any]] = {}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def refresh(self) -> None:
        async with self._lock:
            if self.keys and time.monotonic() - self._fetched_at < self.min_refresh:
                return
            if self._session is None:
                self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2.0))
            async with self._session.get(self.url, raise_for_status=True) as response:
                self.keys = keys_from_jwks(await response.json(content_type=None))
            self._fetched_at = time.monotonic()

    async def ready(self) -> None:
        if not self.keys:
            await self.refresh()

    async def verify(self, token: str, *, token_type: str = "access") -> dict[str, Any]:
        key = (token, token_type)
        claims = self._verified.get(key)
        if claims is not None:
            if time.time() <= claims["exp"] + LEEWAY_SECONDS:
                return claims
            del self._verified[key]  # expired: decode says so in the contract's words
        claims = await self._verify(token, token_type)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]
        self._verified[key] = claims
        return claims

    async def _verify(self, token: str, token_type: str) -> dict[str, Any]:
        try:
            kid = str(jwt.get_unverified_header(token).get("kid"))
        except jwt.DecodeError as exc:
            raise TokenMalformed() from exc
        if kid not in self.keys:
            try:
                await self.refresh()
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                if not self.keys:
                    raise KeysUnavailable() from exc
        return decode(token, self.keys, token_type=token_type, issuer=self.issuer)


class KeysUnavailable(Exception):
    """The JWKS could not be fetched and no key is cached: the auth service is unreachable."""
