"""Kafka topic names, without the environment's prefix (`Settings.topic(name)` adds it)."""

USER_EVENTS = "user-events"
POST_EVENTS = "post-events"
RELATION_EVENTS = "relation-events"
ACTIVITY_EVENTS = "activity-events"

ALL: tuple[str, ...] = (USER_EVENTS, POST_EVENTS, RELATION_EVENTS, ACTIVITY_EVENTS)
