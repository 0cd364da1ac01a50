"""Who can receive notifications: the projection of user events, with the users service as a
fallback for registrations whose event has not arrived yet."""

from __future__ import annotations

from pinstack_kit.user_projection import UserProjection
from pinstack_notifications.errors import UserNotFound
from pinstack_notifications.models import User


class UserDirectory(UserProjection):
    table = User.__table__  # type: ignore[attr-defined]
    not_found = UserNotFound
