from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI

from pinstack_auth.config import Settings
from pinstack_auth.main import create_app
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.testing import REDIS_URL, app_client
from pinstack_users.config import Settings as UsersSettings
from pinstack_users.main import create_app as create_users_app

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


@pytest.fixture
async def auth_app(settings: Settings, pg_database, redis_prefix: str) -> AsyncIterator[FastAPI]:  # type: ignore[no-untyped-def]
    """The auth app in-process, calling a real users app (in-process too) over ASGI."""
    users_settings = UsersSettings(
        environment="test",
        database_url=pg_database("users", ROOT / "users" / "migrations"),
        redis_url=REDIS_URL,
        redis_key_prefix=redis_prefix,
    )
    users_app, app = create_users_app(users_settings), create_app(settings)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(users_app.router.lifespan_context(users_app))
        await stack.enter_async_context(app.router.lifespan_context(app))
        await app.state.users.aclose()
        app.state.users = ServiceClient("users", "http://users", transport=httpx.ASGITransport(app=users_app))
        yield app


@pytest.fixture
async def client(auth_app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=auth_app), base_url="http://auth") as client:
        yield client


__all__ = ["app_client"]
