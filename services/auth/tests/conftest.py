from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from pinstack_auth.config import Settings
from pinstack_auth.main import create_app

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def settings(pg_database, private_key_pem: str, users_url: str) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        environment="test",
        database_url=pg_database("auth", ROOT / "auth" / "migrations"),
        jwt_private_key=private_key_pem,
        users_url=users_url,  # a real users server: auth reaches it over HTTP as in production
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)
