"""`user-events` keep the user projection (usernames for @mentions) current."""

from pinstack_activity.users.service import UserDirectory
from pinstack_kit.consumer import Handler
from pinstack_kit.user_projection import apply_user_events


def user_event_handler() -> Handler:
    return apply_user_events(UserDirectory)
