"""The user projection and @mention resolution."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from pinstack_activity.events import activity_event
from pinstack_activity.models import User
from pinstack_activity.users import repository
from pinstack_contracts.events import MENTION_CREATED, MentionCreated
from pinstack_contracts.limits import USERNAME_MAX, USERNAME_MIN
from pinstack_kit.envelope import rfc3339
from pinstack_kit.errors import Unauthorized
from pinstack_kit.outbox import enqueue_event
from pinstack_kit.user_projection import UserProjection

# `@name` not preceded by a word character or another `@` (so e-mail addresses do not mention).
# Usernames that use other characters than these cannot be mentioned.
MENTION = re.compile(rf"(?<![\w@])@([A-Za-z0-9_.\-]{{{USERNAME_MIN},{USERNAME_MAX}}})")
MAX_MENTIONS = 20  # per text: a comment cannot notify the whole directory


def mentioned_names(text: str) -> list[str]:
    """Distinct candidate usernames in order of appearance (a trailing `.` ends the sentence)."""
    names = (match.group(1).rstrip(".") for match in MENTION.finditer(text))
    return list(dict.fromkeys(name for name in names if len(name) >= USERNAME_MIN))[:MAX_MENTIONS]


class UserDirectory(UserProjection):
    """Usernames for @mentions. A deleted account leaves its tombstone in a table of its own
    (writers need not be in the projection, see repository.alive) and takes its activity along."""

    table = User.__table__  # type: ignore[attr-defined]

    def columns(self, user: dict[str, Any]) -> dict[str, Any]:
        updated_at = user.get("updated_at")
        at = datetime.fromisoformat(updated_at) if isinstance(updated_at, str) else datetime.now(UTC)
        return {"username": str(user["username"]), "updated_at": at}

    async def require_alive(self, user_id: int) -> None:
        """Before a write of `user_id`: a deleted account writes nothing, even a request that was
        on its way when the account went (see repository.alive)."""
        if not await repository.alive(self.session, user_id):
            raise Unauthorized()  # what the account's token answers at the gateway

    async def forget(self, user_id: int) -> None:
        """A deleted account takes its likes, views and comments (with the replies under them)
        along, and the posts' counters drop by what went. Its own posts go by `post_deleted`."""
        await repository.tombstone(self.session, user_id)
        await super().forget(user_id)
        await repository.erase_activity(self.session, user_id)

    async def mentioned(self, text: str, *, author_id: int) -> list[int]:
        """Ids of the users `text` mentions, in order, without its author: one query."""
        names = mentioned_names(text)
        if not names:
            return []
        found = await repository.ids_by_username(self.session, names)
        return list(dict.fromkeys(found[name] for name in names if name in found and found[name] != author_id))

    async def announce_mentions(
        self, topic: str, text: str, *, author_id: int, post_id: int, comment_id: int | None, at: datetime
    ) -> list[int]:
        """A `mention_created` per user `text` mentions (its author aside), through the outbox."""
        mentioned = await self.mentioned(text, author_id=author_id)
        source = "post" if comment_id is None else "comment"
        origin = post_id if comment_id is None else comment_id
        for user_id in mentioned:
            mention = MentionCreated(
                mentioned_user_id=user_id,
                author_id=author_id,
                post_id=post_id,
                comment_id=comment_id,
                source=source,
                created_at=rfc3339(at),
            )
            event_id = f"{MENTION_CREATED}:{source}:{origin}:{user_id}"
            await enqueue_event(self.session, topic, activity_event(mention, event_id))
        return mentioned
