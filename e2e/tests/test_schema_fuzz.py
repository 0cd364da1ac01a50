"""Property-based fuzzing of every operation in the gateway's OpenAPI document (schemathesis).

Each operation gets its own freshly registered user, whose Bearer token goes on every request,
so authenticated routes are exercised past the authentication check (and one operation's
writes never eat into another's per-user rate limit). Checks: no 5xx; the status code is
documented; the content type and the body match the documented response.
Bounded for CI: 25 examples per operation, derandomized, no deadline, no shrinking database.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from pinstack_e2e.client import Account, gateway_url

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


SCHEMA_URL = f"{gateway_url()}/openapi.json"


def _load() -> schemathesis.BaseSchema | None:
    # Loaded at collection (schemathesis' lazy `from_fixture` breaks on pytest 9: it sets the
    # removed `Item._nodeid`). A stack that is down is reported by conftest, which skips the tier.
    try:
        return schemathesis.openapi.from_url(SCHEMA_URL, timeout=10)
    except Exception:
        return None


schema = _load()


@pytest.fixture
def fuzz_user(new_account: Callable[..., Account]) -> Account:
    return new_account("fuzz")


if schema is None:

    def test_every_operation_conforms_to_the_openapi_document() -> None:
        pytest.skip(f"cannot load {SCHEMA_URL}: start the stack with `make up`")

else:

    @schema.parametrize()
    @settings(
        max_examples=25,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def test_every_operation_conforms_to_the_openapi_document(case: schemathesis.Case, fuzz_user: Account) -> None:
        response = case.call(headers={"Authorization": f"Bearer {fuzz_user.access}"}, timeout=30)
        if response.status_code == 429:  # the gateway's rate limiter, a documented global answer
            assert response.json() == {"status": 429, "message": "too many requests"}
            assert response.headers.get("retry-after")
            return
        case.validate_response(response, checks=CHECKS)
