"""Forge JWTs the gateway must refuse (or, with the stack's own dev key, an expired one).

Written by hand with `cryptography` so the tests do not depend on a JWT library's opinions of
what may be signed (alg `none`, HS256 keyed with a public key...).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a token, unverified (to forge look-alikes of a real one)."""
    header, claims, _ = token.split(".")
    return json.loads(b64url_decode(header)), json.loads(b64url_decode(claims))


def _signing_input(header: dict[str, Any], claims: dict[str, Any]) -> bytes:
    return f"{b64url(json.dumps(header).encode())}.{b64url(json.dumps(claims).encode())}".encode()


def unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return _signing_input({**header, "alg": "none"}, claims).decode() + "."


def hs256(header: dict[str, Any], claims: dict[str, Any], secret: bytes) -> str:
    signing_input = _signing_input({**header, "alg": "HS256"}, claims)
    return f"{signing_input.decode()}.{b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


def eddsa(header: dict[str, Any], claims: dict[str, Any], key: Ed25519PrivateKey) -> str:
    signing_input = _signing_input({**header, "alg": "EdDSA"}, claims)
    return f"{signing_input.decode()}.{b64url(key.sign(signing_input))}"


def new_key() -> tuple[Ed25519PrivateKey, str]:
    """A fresh Ed25519 key and its PEM (to prove it never shows up in a log)."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return key, pem


def load_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise TypeError("not an Ed25519 private key")
    return key


def pem_body(pem: str) -> list[str]:
    """The base64 lines of a PEM: any of them in a log means key material leaked."""
    return [line for line in pem.splitlines() if line and not line.startswith("-----")]
