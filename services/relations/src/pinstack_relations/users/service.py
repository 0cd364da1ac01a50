"""Which users exist: the projection of user events, with the users service as fallback."""

from __future__ import annotations

from typing import Any

from pinstack_kit.user_projection import UserProjection
from pinstack_relations.errors import UserNotFound
from pinstack_relations.models import User


class UserDirectory(UserProjection):
    table = User.__table__  # type: ignore[attr-defined]
    not_found = UserNotFound

    def columns(self, user: dict[str, Any]) -> dict[str, Any]:
        return {"username": str(user["username"]), "avatar_url": user.get("avatar_url")}
