"""Events the feed consumes (it publishes none): posts and follows build the timelines."""

POST_EVENTS = "post-events"
POST_CREATED = "post_created"
POST_DELETED = "post_deleted"

RELATION_EVENTS = "relation-events"
FOLLOW_CREATED = "follow_created"
FOLLOW_DELETED = "follow_deleted"

CONSUMER_GROUP = "feed"
