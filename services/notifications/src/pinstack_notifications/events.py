"""The notifications service publishes no events; it reads `relation-events`, `activity-events`
and `user-events` in one group, and names the notifications activity events become."""

# Notification types made from activity events.
LIKE = "like"
COMMENT = "comment"
COMMENT_REPLY = "comment_reply"
MENTION = "mention"

CONSUMER_GROUP = "notifications"
