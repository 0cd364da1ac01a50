"""The Ed25519 signing key, its JWKS, and the token pair it signs."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinstack_auth.config import Settings

log = logging.getLogger(__name__)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    refresh_jti: uuid.UUID
    refresh_expires_at: float


class SigningKeys:
    def __init__(self, settings: Settings) -> None:
        pem = settings.private_key_pem()
        if pem:
            key = serialization.load_pem_private_key(pem.encode(), password=None)
            if not isinstance(key, Ed25519PrivateKey):
                raise ValueError("JWT private key must be an Ed25519 key (openssl genpkey -algorithm ed25519)")
        else:
            log.warning("no JWT private key configured: using an ephemeral key (development only)")
            key = Ed25519PrivateKey.generate()
        self.private_key = key
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public_jwk: dict[str, str] = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
        # RFC 7638 thumbprint: stable across restarts for the same key.
        self.kid = _b64(hashlib.sha256(orjson.dumps(self.public_jwk, option=orjson.OPT_SORT_KEYS)).digest())
        self.issuer = settings.jwt_issuer
        self.access_ttl = settings.access_token_ttl_seconds
        self.refresh_ttl = settings.refresh_token_ttl_seconds

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self.public_jwk, "kid": self.kid, "use": "sig", "alg": "EdDSA"}]}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.private_key, algorithm="EdDSA", headers={"kid": self.kid})

    def issue(self, user_id: int, family_id: uuid.UUID) -> TokenPair:
        """An access token names its session (`sid`, the refresh-token family, which a logout
        ends) and carries its issue time to the millisecond (RFC 7519 allows a fractional `iat`),
        so that a password change voids the tokens issued before it and not the ones after."""
        issued_at = time.time()
        now = int(issued_at)
        common = {"iss": self.issuer, "sub": str(user_id), "user_id": user_id, "iat": round(issued_at, 3)}
        access = self._sign(
            {**common, "typ": "access", "jti": uuid.uuid4().hex, "sid": str(family_id), "exp": now + self.access_ttl}
        )
        refresh_jti = uuid.uuid4()
        expires = now + self.refresh_ttl
        refresh = self._sign(
            {**common, "typ": "refresh", "jti": str(refresh_jti), "fam": str(family_id), "exp": expires}
        )
        return TokenPair(access, refresh, refresh_jti, float(expires))

    def verification_keys(self) -> dict[str, Any]:
        return {self.kid: self.private_key.public_key()}
