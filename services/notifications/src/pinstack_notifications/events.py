"""Topics the notifications service consumes (it publishes none)."""

RELATION_EVENTS = "relation-events"
FOLLOW_CREATED = "follow_created"

ACTIVITY_EVENTS = "activity-events"
LIKE_CREATED = "like_created"
COMMENT_CREATED = "comment_created"
MENTION_CREATED = "mention_created"

# Notification types made from activity events.
LIKE = "like"
COMMENT = "comment"
COMMENT_REPLY = "comment_reply"
MENTION = "mention"

USER_EVENTS = "user-events"

CONSUMER_GROUP = "notifications"
