"""Events the posts service publishes (`post-events`) and the user events it consumes."""

from typing import Any

from pinstack_kit.events import Event

POST_EVENTS = "post-events"
POST_CREATED = "post_created"
POST_UPDATED = "post_updated"
POST_DELETED = "post_deleted"

USER_EVENTS = "user-events"
CONSUMER_GROUP = "posts"


def post_event(kind: str, data: dict[str, Any]) -> Event:
    return Event(type=kind, aggregate_id=str(data["id"]), data=data)
