"""Events the users service publishes on `user-events` (consumed by auth, posts, relations,
notifications, activity); their names and payloads are in `pinstack_contracts.events`."""

from pinstack_contracts.events import Event, User, UserDeleted


def user_event(user: User | UserDeleted) -> Event:
    return Event.of(user, user.id)
