"""Events the users service publishes (consumed by auth, posts, relations, notifications...)."""

from pinstack_kit.events import Event

USER_EVENTS = "user-events"

USER_CREATED = "user_created"
USER_UPDATED = "user_updated"
USER_DELETED = "user_deleted"


def user_event(kind: str, user: dict[str, object]) -> Event:
    return Event(type=kind, aggregate_id=str(user["id"]), data=user)
