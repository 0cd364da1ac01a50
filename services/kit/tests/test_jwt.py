"""Access-token verification: the verified-token cache never outlives a token's expiry."""

import asyncio
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinstack_kit import jwt as kit_jwt
from pinstack_kit.jwt import JWKSVerifier, TokenError, TokenExpired

pytestmark = pytest.mark.unit

ISSUER = "pinstack-auth"


@pytest.fixture
def signer() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def verifier(signer: Ed25519PrivateKey) -> JWKSVerifier:
    v = JWKSVerifier("http://127.0.0.1:9/unused", issuer=ISSUER)
    v.keys = {"k1": signer.public_key()}
    return v


def token(signer: Ed25519PrivateKey, *, ttl: float = 60, typ: str = "access") -> str:
    now = time.time()
    claims = {"sub": "7", "typ": typ, "iss": ISSUER, "iat": int(now), "exp": now + ttl}
    return jwt.encode(claims, signer, algorithm="EdDSA", headers={"kid": "k1"})


async def test_a_token_is_verified_once_then_served_from_memory(
    verifier: JWKSVerifier, signer: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = kit_jwt.decode

    def counting(t: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append(t)
        return real(t, *args, **kwargs)

    monkeypatch.setattr(kit_jwt, "decode", counting)
    access = token(signer)
    assert (await verifier.verify(access))["sub"] == "7"
    assert (await verifier.verify(access))["sub"] == "7"
    assert len(calls) == 1
    with pytest.raises(TokenError):  # the same token as another type is checked on its own
        await verifier.verify(access, token_type="refresh")


async def test_a_cached_token_still_expires(
    verifier: JWKSVerifier, signer: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kit_jwt, "LEEWAY_SECONDS", 0)
    access = token(signer, ttl=1)
    await verifier.verify(access)
    await asyncio.sleep(1.2)
    with pytest.raises(TokenExpired):
        await verifier.verify(access)


async def test_the_cache_is_bounded(
    verifier: JWKSVerifier, signer: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(kit_jwt, "VERIFIED_CACHE_SIZE", 3)
    tokens = [token(signer, ttl=60 + i) for i in range(5)]
    for t in tokens:
        await verifier.verify(t)
    assert [t for t, _ in verifier._verified] == tokens[2:]  # the oldest went first
