"""Property-based fuzzing of every operation in the gateway's OpenAPI document (schemathesis).

Each operation gets its own freshly registered user, whose Bearer token goes on every request,
so authenticated routes are exercised past the authentication check (and one operation's
writes never eat into another's per-user rate limit). Checks: no 5xx; the status code is
documented; the content type and the body match the documented response; a request the document
calls valid is not refused as bad input (positive data acceptance: the document declares every
rule the gateway and its services enforce); and `OPTIONS` on the operation's path answers an
`Allow` header of exactly the documented methods.
Bounded for CI: 25 examples per operation, derandomized, no deadline, no shrinking database.
"""

from __future__ import annotations

import base64
import uuid
import zlib
from collections.abc import Callable

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from pinstack_e2e.client import Account, Api, data_of, gateway_url

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    positive_data_acceptance,
]
# The document's cursor formats: `<key>:<id>` in base64url (the key a time up to the end of 9999), or an id.
LAST_MICROSECOND = 253_402_300_799_999_999
INT64_MAX = 2**63 - 1


def cursor(*parts: int) -> str:
    """A cursor as the document describes it (built here: e2e does not import the kit)."""
    return base64.urlsafe_b64encode(":".join(map(str, parts)).encode()).decode().rstrip("=")


schemathesis.openapi.format(
    "pinstack-cursor",
    st.just("") | st.builds(cursor, st.integers(0, LAST_MICROSECOND), st.integers(0, INT64_MAX)),
)
schemathesis.openapi.format("pinstack-id-cursor", st.just("") | st.builds(cursor, st.integers(0, INT64_MAX)))


@schemathesis.hook
def map_body(context: schemathesis.HookContext, body: object) -> object:
    """JSON Schema counts 3.0 as an integer; the document's `int64` fields, like Go's decoder, take
    integer literals only: send 3."""
    if isinstance(body, float) and body.is_integer():
        return int(body)
    if isinstance(body, list):
        return [map_body(context, item) for item in body]
    if isinstance(body, dict):
        return {key: map_body(context, value) for key, value in body.items()}
    return body


SCHEMA_URL = f"{gateway_url()}/openapi.json"


def _load() -> schemathesis.BaseSchema | None:
    # Loaded at collection (schemathesis' lazy `from_fixture` breaks on pytest 9: it sets the
    # removed `Item._nodeid`). A stack that is down is reported by conftest, which skips the tier.
    try:
        loaded = schemathesis.openapi.from_url(SCHEMA_URL, timeout=10)
    except Exception:
        return None
    # No string may hold NUL (PostgreSQL text cannot): the document's description says so.
    loaded.config.generation.update(allow_x00=False)
    return loaded


schema = _load()


@pytest.fixture
def fuzz_user(new_account: Callable[..., Account]) -> Account:
    return new_account("fuzz")


@pytest.fixture
def owned_ids(api: Api, fuzz_user: Account) -> dict[str, str]:
    """Ids of things the fuzz user owns: random ids almost always miss (404), these reach the
    success paths, whose bodies are then checked against the document too."""
    post = api.create_post(fuzz_user, "Fuzzed", tags=["fuzz"])["id"]
    comment = data_of(api.post(f"/posts/{post}/comments", token=fuzz_user.access, json={"content": "fuzz"}), 201)["id"]
    note = data_of(
        api.post(
            "/notification/send",
            token=fuzz_user.access,
            json={"user_id": fuzz_user.id, "type": "system", "payload": {"f": 1}},
        ),
        200,
    )["notification_id"]
    return {
        "user_id": str(fuzz_user.id),
        "post_id": str(post),
        "comment_id": str(comment),
        "notification_id": str(note),
    }


def aim_at_owned(case: schemathesis.Case, owned: dict[str, str]) -> None:
    """Point about half the generated path ids (chosen by a stable hash) at the user's own things."""
    for name, value in list((case.path_parameters or {}).items()):
        if name in owned and zlib.crc32(repr(value).encode()) % 2 == 0:
            case.path_parameters[name] = owned[name]  # type: ignore[index]


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
    def test_every_operation_conforms_to_the_openapi_document(
        case: schemathesis.Case, fuzz_user: Account, owned_ids: dict[str, str]
    ) -> None:
        aim_at_owned(case, owned_ids)
        if case.headers and "Idempotency-Key" in case.headers:
            # a key names one intended write (the document says so): another body under it is a 422
            case.headers["Idempotency-Key"] = uuid.uuid4().hex
        response = case.call(headers={"Authorization": f"Bearer {fuzz_user.access}"}, timeout=30)
        if response.status_code == 429:  # the gateway's rate limiter, a documented global answer
            assert response.json() == {"status": 429, "message": "too many requests"}
            assert response.headers.get("retry-after")
            return
        case.validate_response(response, checks=CHECKS)
        options = case.operation.Case(method="OPTIONS", path_parameters=case.path_parameters)
        answer = options.call(timeout=30)
        assert "allow" in answer.headers, f"OPTIONS {answer.request.url} answered {answer.status_code} without Allow"
        options.validate_response(answer, checks=[allow_header_conformance])
