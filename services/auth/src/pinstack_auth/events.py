"""The auth service publishes no events; it reads `user-events` (account deletion) in this group."""

CONSUMER_GROUP = "auth"
