"""Helpers shared by the relations tests (a unique module name: every service has a conftest)."""

import uuid
from collections.abc import Awaitable, Callable

from pinstack_contracts.events import Event

Seed = Callable[..., Awaitable[list[int]]]


def new_id() -> int:
    """A user id no other test (and no real users server) hands out."""
    return 10**12 + uuid.uuid4().int % 10**15


def user_event(kind: str, data: dict[str, object]) -> Event:
    """A user event exactly as the users service publishes it."""
    return Event(type=kind, aggregate_id=str(data["id"]), data=data)
