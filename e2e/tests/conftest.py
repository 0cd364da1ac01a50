"""The e2e tier drives the running stack (`make up`) through its public interfaces only.

Every test here is marked `e2e`; the whole tier is skipped, with the command to run, when the
gateway does not answer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from pinstack_e2e.client import Account, Api, gateway_url

E2E_DIR = Path(__file__).resolve().parent.parent
REPO = E2E_DIR.parent


def _gateway_problem() -> str | None:
    try:
        response = httpx.get(f"{gateway_url()}/healthz", timeout=3.0)
    except httpx.HTTPError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if response.status_code == 200 else f"/healthz answered {response.status_code}"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "last: run after every other e2e test (it inspects what they left)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    mine = [item for item in items if E2E_DIR in item.path.parents]
    if not mine:
        return
    problem = _gateway_problem()
    for item in mine:
        item.add_marker(pytest.mark.e2e)
        if problem is not None:
            item.add_marker(
                pytest.mark.skip(
                    reason=f"the stack is not running (gateway {gateway_url()}: {problem}); start it with `make up`, or run `make e2e`"
                )
            )
    last = [item for item in items if item.get_closest_marker("last")]
    items[:] = [item for item in items if not item.get_closest_marker("last")] + last


@pytest.fixture(scope="session")
def api() -> Iterator[Api]:
    client = Api(gateway_url())
    yield client
    client.close()


@pytest.fixture
def new_account(api: Api) -> Callable[..., Account]:
    """`new_account("alice")` signs up a user with a run-unique name."""
    return api.register


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")


@pytest.fixture(scope="session")
def state_dir() -> Path:
    return Path(os.environ.get("PINSTACK_STATE_DIR", REPO / ".stack"))
