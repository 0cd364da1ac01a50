"""The contract tests drive a real gateway over HTTP, in front of real users, auth, posts,
relations, notifications, feed and activity services and their workers (outbox relays, Kafka consumers) on the
local PostgreSQL, Redis and Kafka (`make infra`). One stack per test worker, started once; its
Kafka topics and consumer groups carry a prefix of their own, so parallel runs never share them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from gateway_contract import (
    PASSWORD,
    Account,
    Stack,
    assert_token_pair,
    claims_of,
    data_of,
    pem,
    second_gateway,
    unique_name,
)

from pinstack_contracts import topics
from pinstack_contracts.services import BY_NAME
from pinstack_testing import KAFKA, REDIS_URL, eventually, free_port, spawn_service, spawn_worker, worker_id

REPO = Path(__file__).resolve().parents[3]
NO_RATE_LIMITS = {
    "RATE_LIMIT_AUTH_PER_MINUTE": "0",
    "RATE_LIMIT_LOGIN_FAILURES": "0",
    "RATE_LIMIT_WRITES_PER_MINUTE": "0",
}
BACKENDS = BY_NAME["gateway"].calls
TOPICS = topics.ALL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The per-test timeout times the test itself, not the start of the stack that the first test
    of each worker waits for (a minute on a loaded machine; every step of it is bounded)."""
    here = Path(__file__).parent
    for item in items:
        if item.path.is_relative_to(here) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(func_only=True))


@pytest.fixture(scope="session")
def signing_key() -> Ed25519PrivateKey:
    """The auth service's private key: tests mint their own (expired, odd) tokens with it."""
    return Ed25519PrivateKey.generate()


def create_topics(prefix: str) -> None:
    """Up front, so that each consumer is assigned its partitions when it joins, not at its next
    metadata refresh."""

    async def create() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(f"{prefix}{topic}", 3, 1) for topic in TOPICS])
        except TopicAlreadyExistsError:
            pass
        finally:
            await admin.close()

    with ThreadPoolExecutor(max_workers=1) as pool:  # fixtures may run while a loop is running
        pool.submit(asyncio.run, create()).result()


@pytest.fixture(scope="session")
def stack(
    pg_database: Callable[[str, Path], str],
    tmp_path_factory: pytest.TempPathFactory,
    signing_key: Ed25519PrivateKey,
) -> Iterator[Stack]:
    # Databases of its own: its workers' relays publish every unsent outbox row they find, so
    # sharing a service test's database would publish that test's rows too.
    databases = {name: pg_database(f"gw_{name}", REPO / f"services/{name}/migrations") for name in BACKENDS}
    key_file = tmp_path_factory.mktemp("keys") / "jwt-ed25519.pem"
    key_file.write_bytes(pem(signing_key))
    logs = tmp_path_factory.mktemp("logs")
    run = uuid.uuid4().hex[:8]
    prefix = f"test.{worker_id()}.{run}."
    common = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        "REDIS_URL": REDIS_URL,
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
        "KAFKA_TOPIC_PREFIX": prefix,
        # These tests check the contract, not latency (bench does): on a CI machine that also runs
        # a Kubernetes node, a register once took over 5 s while the other xdist worker started
        # its 16 processes, and the default deadline's 504 failed a contract test.
        "UPSTREAM_TIMEOUT_SECONDS": "20",
    }
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in BACKENDS}
    env = {
        name: {
            **common,
            "DATABASE_URL": databases[name],
            "REDIS_KEY_PREFIX": f"test:{worker_id()}:{run}:{name}:",
            # every other backend's URL, as `make up` gives them (activity asks posts, ...)
            **{f"{other.upper()}_URL": url for other, url in urls.items() if other != name},
        }
        for name in BACKENDS
    }
    env["auth"]["JWT_PRIVATE_KEY_FILE"] = str(key_file)
    create_topics(prefix)
    gateway_env = {
        **common,
        **{f"{name.upper()}_URL": url for name, url in urls.items()},
        "JWKS_URL": f"{urls['auth']}/.well-known/jwks.json",
        "REDIS_KEY_PREFIX": f"test:{worker_id()}:{run}:gateway:",
        # The contract tests register many accounts from one address: limits are off here and
        # on only in test_rate_limits.py, which starts gateways of its own with small ones.
        **NO_RATE_LIMITS,
    }
    with ExitStack() as stack:
        # One at a time: started together, their imports starve each other on a small machine.
        for name, url in urls.items():
            port = int(url.rpartition(":")[2])
            stack.enter_context(spawn_service(f"pinstack_{name}.main:create_app", env[name], port=port, log_dir=logs))
        gateway_url = stack.enter_context(spawn_service("pinstack_gateway.main:create_app", gateway_env, log_dir=logs))
        for name in BACKENDS:  # outbox relays and consumers: events flow as in production
            stack.enter_context(spawn_worker(f"pinstack_{name}.worker", env[name], log_dir=logs))
        yield Stack(gateway=gateway_url, urls=urls, databases=databases, topic_prefix=prefix, gateway_env=gateway_env)


@pytest.fixture(scope="module")
def replica(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """A client at `/api/v1` of a second gateway replica."""
    with second_gateway(stack, tmp_path_factory) as url, httpx.Client(base_url=f"{url}/api/v1", timeout=15) as client:
        yield client


@pytest.fixture(scope="session")
def gateway_url(stack: Stack) -> str:
    return stack.gateway


@pytest.fixture(scope="session")
def stranded_gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A gateway whose backends (and JWKS) are all down."""
    urls = {name: f"http://127.0.0.1:{free_port()}" for name in BACKENDS}
    env = {
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "WARNING",
        **{f"{name.upper()}_URL": url for name, url in urls.items()},
        "JWKS_URL": f"{urls['auth']}/.well-known/jwks.json",
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:stranded:",
        **NO_RATE_LIMITS,
    }
    with spawn_service("pinstack_gateway.main:create_app", env, log_dir=tmp_path_factory.mktemp("logs")) as url:
        yield url


@pytest.fixture(scope="session")
def server(gateway_url: str) -> Iterator[httpx.Client]:
    """A client at the gateway's root (for paths outside /api/v1)."""
    with httpx.Client(base_url=gateway_url, timeout=30.0) as client:
        yield client


@pytest.fixture(scope="session")
def api(gateway_url: str) -> Iterator[httpx.Client]:
    """A client at `/api/v1`."""
    with httpx.Client(base_url=f"{gateway_url}/api/v1", timeout=30.0) as client:
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


@pytest.fixture(scope="session")
async def events_ready(api: httpx.Client, register: Callable[..., Account]) -> None:
    """Events flow end to end: the first follow of a run waits for the consumers to join their
    groups (seconds); the tests that time the flow start after it."""
    fan, star = register(), register()
    data_of(api.post("/relation/follow", json={"followee_id": star.id}, headers=fan.headers))

    def notified() -> int:
        return int(data_of(api.get("/notification/feed", headers=star.headers))["total"])

    await eventually(notified, timeout=60, interval=0.1)
