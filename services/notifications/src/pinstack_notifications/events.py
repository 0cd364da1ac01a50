"""Topics the notifications service consumes (it publishes none)."""

RELATION_EVENTS = "relation-events"
FOLLOW_CREATED = "follow_created"

USER_EVENTS = "user-events"
USER_CREATED = "user_created"
USER_UPDATED = "user_updated"
USER_DELETED = "user_deleted"

CONSUMER_GROUP = "notifications"
