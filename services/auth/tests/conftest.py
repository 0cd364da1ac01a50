from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
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
def settings(pg_database, private_key_pem: str) -> Settings:  # type: ignore[no-untyped-def]
    return Settings(
        environment="test",
        database_url=pg_database("auth", ROOT / "auth" / "migrations"),
        jwt_private_key=private_key_pem,
    )


@pytest.fixture(scope="session")
def users_url(service_server: Callable[[str], str]) -> str:
    """A real users server: auth reaches it over HTTP as in production."""
    return service_server("users")


@pytest.fixture
async def auth_app(settings: Settings, users_url: str) -> AsyncIterator[FastAPI]:
    app = create_app(settings.model_copy(update={"users_url": users_url}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_app), base_url="http://auth") as client:
        yield client
