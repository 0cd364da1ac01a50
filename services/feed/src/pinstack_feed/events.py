"""The feed publishes no events; it reads `post-events` and `relation-events` in this group."""

CONSUMER_GROUP = "feed"
