"""The author projection: profiles copied from the users service, read together with posts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pinstack_kit.user_projection import UserProjection
from pinstack_posts.errors import UserNotFound
from pinstack_posts.models import Author


class UserDirectory(UserProjection):
    table = Author.__table__  # type: ignore[attr-defined]
    not_found = UserNotFound

    def columns(self, user: dict[str, Any]) -> dict[str, Any]:
        """The public profile (an absent optional field is null)."""
        return {
            "username": user["username"],
            "email": user["email"],
            "full_name": user.get("full_name"),
            "bio": user.get("bio"),
            "avatar_url": user.get("avatar_url"),
            "updated_at": datetime.fromisoformat(user["updated_at"]),
        }
