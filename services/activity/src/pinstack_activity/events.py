"""Events the activity service publishes (`activity-events`) and the events it consumes.

Event ids are derived from what they announce (`like_created:{post}:{user}`...): a like undone
and done again, or any replay, carries the same id, so a consumer that deduplicates by event id
(the kit's runner does) notifies once, never twice.
"""

from typing import Any

from pinstack_kit.events import Event

ACTIVITY_EVENTS = "activity-events"
LIKE_CREATED = "like_created"
COMMENT_CREATED = "comment_created"
MENTION_CREATED = "mention_created"

POST_EVENTS = "post-events"
POST_CREATED = "post_created"
POST_DELETED = "post_deleted"

USER_EVENTS = "user-events"

CONSUMER_GROUP = "activity"


def activity_event(kind: str, event_id: str, post_id: int, data: dict[str, Any]) -> Event:
    return Event(event_id=event_id, type=kind, aggregate_id=str(post_id), data=data)
