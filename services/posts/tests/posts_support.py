"""Helpers shared by the posts tests (a module of its own: every service has a `conftest`)."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

UserEvent = Callable[..., Awaitable[dict[str, Any]]]


def new_user(**overrides: Any) -> dict[str, Any]:
    """A public user object as the users service publishes it (ids never clash between tests)."""
    name = f"u{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    user = {
        "id": uuid.uuid4().int >> 66,
        "username": name,
        "email": f"{name}@example.com",
        "created_at": now,
        "updated_at": now,
    }
    return {**user, **overrides}
