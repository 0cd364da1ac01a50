"""The service registry: every Pinstack service once, with what the other parts need to know
about it. The operator, the local stack, the image builder, the manifest generator and the
charts read this table instead of keeping their own lists; adding a service starts here.

Standard library only, like topics.py: the scripts (scripts/registry.py) read these two files from
the source tree with the system python3, where pydantic is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

from pinstack_contracts import topics


@dataclass(frozen=True)
class Service:
    name: str
    port: int  # the local stack's port (in a pod every service listens on 8080)
    produces: tuple[str, ...] = ()  # topics its outbox relay publishes to (names without the prefix)
    consumes: tuple[str, ...] = ()  # topics its worker's consumers read
    calls: tuple[str, ...] = ()  # services it calls over HTTP (started before it)
    database: bool = True  # owns a PostgreSQL database (and so an outbox and migrations)
    worker: bool = True  # runs `python -m pinstack_<name>.worker` beside the API

    @property
    def topics(self) -> tuple[str, ...]:
        """Every topic it touches, produced first, without repeats."""
        return tuple(dict.fromkeys((*self.produces, *self.consumes)))

    @property
    def package(self) -> str:
        return f"pinstack_{self.name}"


SERVICES: tuple[Service, ...] = (
    Service("users", 8101, produces=(topics.USER_EVENTS,)),
    Service("auth", 8102, consumes=(topics.USER_EVENTS,), calls=("users",)),
    Service("posts", 8103, produces=(topics.POST_EVENTS,), consumes=(topics.USER_EVENTS,), calls=("users",)),
    Service("relations", 8104, produces=(topics.RELATION_EVENTS,), consumes=(topics.USER_EVENTS,), calls=("users",)),
    Service(
        "notifications",
        8105,
        consumes=(topics.RELATION_EVENTS, topics.ACTIVITY_EVENTS, topics.USER_EVENTS),
        calls=("users",),
    ),
    Service("feed", 8106, consumes=(topics.POST_EVENTS, topics.RELATION_EVENTS)),
    Service(
        "activity",
        8107,
        produces=(topics.ACTIVITY_EVENTS,),
        consumes=(topics.POST_EVENTS, topics.USER_EVENTS),
        calls=("posts",),
    ),
    Service(
        "gateway",
        8080,
        calls=("users", "auth", "posts", "relations", "notifications", "feed", "activity"),
        database=False,
        worker=False,
    ),
)

BY_NAME: dict[str, Service] = {s.name: s for s in SERVICES}
NAMES: tuple[str, ...] = tuple(s.name for s in SERVICES)


def start_order() -> list[list[str]]:
    """Services in groups that can start together: each group only calls services of earlier ones."""
    started: set[str] = set()
    groups: list[list[str]] = []
    left = list(SERVICES)
    while left:
        group = [s.name for s in left if set(s.calls) <= started]
        if not group:
            raise ValueError(f"services call each other in a cycle: {[s.name for s in left]}")
        groups.append(group)
        started.update(group)
        left = [s for s in left if s.name not in started]
    return groups
