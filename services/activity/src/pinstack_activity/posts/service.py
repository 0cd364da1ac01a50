"""The post projection: which posts exist and who wrote them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.config import Settings
from pinstack_activity.events import ACTIVITY_EVENTS
from pinstack_activity.posts import repository
from pinstack_activity.users.service import UserDirectory


class PostDirectory:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.topic = settings.topic(ACTIVITY_EVENTS)

    async def created(self, post_id: int, author_id: int, title: str, created_at: str | None) -> None:
        if not await repository.add(self.session, post_id, author_id):
            return  # known already: its mentions went out the first time
        # `post-events` carry the title but not the content: only mentions in titles are found.
        at = datetime.fromisoformat(created_at) if created_at else datetime.now(UTC)
        await UserDirectory(self.session).announce_mentions(
            self.topic, title, author_id=author_id, post_id=post_id, comment_id=None, at=at
        )

    async def deleted(self, post_id: int) -> None:
        await repository.delete(self.session, post_id)
