"""The contract tests drive a real gateway over HTTP, in front of real users and auth services
on the local PostgreSQL and Redis (`make infra`). One stack per test worker, started once."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_contract import PASSWORD, Account, assert_token_pair, claims_of, data_of, pem, unique_name

from pinstack_kit.testing import KAFKA, REDIS_URL, free_port, spawn_service, worker_id

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    """The auth service's private key: tests mint their own (expired, odd) tokens with it."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def gateway_url(
    pg_database: Callable[[str, Path], str],
    tmp_path_factory: pytest.TempPathFactory,
    signing_key: Ed25519PrivateKey,
) -> Iterator[str]:
    users_db = pg_database("users", REPO / "services/users/migrations")
    auth_db = pg_database("auth", REPO / "services/auth/migrations")
    key_file = tmp_path_factory.mktemp("keys") / "jwt-ed25519.pem"
    key_file.write_bytes(pem(signing_key))
    logs = tmp_path_factory.mktemp("logs")
    common = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:",
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
    }
    users_port, auth_port = free_port(), free_port()
    users_url, auth_url = f"http://127.0.0.1:{users_port}", f"http://127.0.0.1:{auth_port}"
    with ExitStack() as stack:
        stack.enter_context(
            spawn_service(
                "pinstack_users.main:create_app",
                {**common, "DATABASE_URL": users_db},
                port=users_port,
                log_dir=logs,
            )
        )
        stack.enter_context(
            spawn_service(
                "pinstack_auth.main:create_app",
                {**common, "DATABASE_URL": auth_db, "USERS_URL": users_url, "JWT_PRIVATE_KEY_FILE": str(key_file)},
                port=auth_port,
                log_dir=logs,
            )
        )
        gateway = stack.enter_context(
            spawn_service(
                "pinstack_gateway.main:create_app",
                {
                    **common,
                    "USERS_URL": users_url,
                    "AUTH_URL": auth_url,
                    "JWKS_URL": f"{auth_url}/.well-known/jwks.json",
                },
                log_dir=logs,
            )
        )
        yield gateway


@pytest.fixture(scope="session")
def stranded_gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose users and auth services (and JWKS) are down."""
    users_url, auth_url = f"http://127.0.0.1:{free_port()}", f"http://127.0.0.1:{free_port()}"
    env = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "USERS_URL": users_url,
        "AUTH_URL": auth_url,
        "JWKS_URL": f"{auth_url}/.well-known/jwks.json",
    }
    with spawn_service("pinstack_gateway.main:create_app", env, log_dir=tmp_path_factory.mktemp("logs")) as url:
        yield url


@pytest.fixture(scope="session")
def server(gateway_url: str) -> Iterator[httpx.Client]:
    """A client at the gateway's root (for paths outside /api/v1)."""
    with httpx.Client(base_url=gateway_url, timeout=15.0) as client:
        yield client


@pytest.fixture(scope="session")
def api(gateway_url: str) -> Iterator[httpx.Client]:
    """A client at `/api/v1`."""
    with httpx.Client(base_url=f"{gateway_url}/api/v1", timeout=15.0) as client:
        yield client


@pytest.fixture(scope="session")
def register(api: httpx.Client) -> Callable[..., Account]:
    """`register(**fields)`: a fresh account with a unique username and email, signed in."""

    def make(**fields: Any) -> Account:
        username = fields.pop("username", None) or unique_name()
        body = {"username": username, "email": f"{username}@example.com", "password": PASSWORD, **fields}
        pair = assert_token_pair(data_of(api.post("/auth/register", json=body), 201))
        return Account(
            id=int(claims_of(pair["access_token"])["user_id"]),
            username=username,
            email=body["email"],
            password=body["password"],
            access=pair["access_token"],
            refresh=pair["refresh_token"],
        )

    return make


@pytest.fixture
def account(register: Callable[..., Account]) -> Account:
    return register()


@pytest.fixture
def other(register: Callable[..., Account]) -> Account:
    return register()
