"""Topics the auth service consumes (it publishes none)."""

USER_EVENTS = "user-events"
USER_DELETED = "user_deleted"
CONSUMER_GROUP = "auth"
