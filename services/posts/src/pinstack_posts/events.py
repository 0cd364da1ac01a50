"""Events the posts service publishes on `post-events` and its consumer group for the user
events it reads; names and payloads are in `pinstack_contracts.events`."""

from pinstack_contracts.events import Event, Post, PostDeleted

CONSUMER_GROUP = "posts"


def post_event(post: Post | PostDeleted) -> Event:
    return Event.of(post, post.id)
