"""The post projection: which posts exist and who wrote them."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.config import Settings
from pinstack_activity.errors import PostNotFound
from pinstack_activity.posts import repository
from pinstack_activity.users.service import UserDirectory
from pinstack_contracts.topics import ACTIVITY_EVENTS
from pinstack_kit.db import defer, run_deferred
from pinstack_kit.http_client import ServiceClient

_NEW_POSTS = "activity_new_posts"  # the consumed post_created events waiting for their statement


class PostDirectory:
    def __init__(self, session: AsyncSession, settings: Settings, posts: ServiceClient | None = None) -> None:
        self.session = session
        self.topic = settings.topic(ACTIVITY_EVENTS)
        self.posts = posts

    async def require(self, post_id: int) -> None:
        """Raise `PostNotFound` unless the post exists. A post created a moment ago may not have
        reached the projection through `post-events` yet: then its owner is asked once, and the
        answer is recorded as the event would have been (mentions included, exactly once).
        A `post_deleted` consumed while that answer is in flight wins (see repository.add)."""
        if await repository.known(self.session, post_id):
            return
        post = await self.posts.find(f"/posts/{post_id}") if self.posts is not None else None
        if post is None:
            raise PostNotFound()
        await self.created(post_id, int(post["author"]["id"]), post.get("title") or "", post.get("created_at"))
        if not await repository.known(self.session, post_id):
            raise PostNotFound()  # deleted since the posts service answered

    async def created(self, post_id: int, author_id: int, title: str, created_at: str | None) -> None:
        """The post joins the projection now (asked for by a request that needs it)."""
        await self._add([(post_id, author_id, title, created_at)])

    def created_later(self, post_id: int, author_id: int, title: str, created_at: str | None) -> None:
        """A consumed `post_created`: it joins with the transaction's other new posts in one
        statement (`defer`)."""
        defer(self.session, _NEW_POSTS, (post_id, author_id, title, created_at), self._add)

    async def _add(self, posts: list[tuple[int, int, str, str | None]]) -> None:
        added = await repository.add(self.session, [(post_id, author_id) for post_id, author_id, _, _ in posts])
        for post_id, author_id, title, created_at in posts:
            if post_id not in added:
                continue  # known already (its mentions went out the first time), or deleted
            added.discard(post_id)
            # `post-events` carry the title but not the content: only mentions in titles are found.
            at = datetime.fromisoformat(created_at) if created_at else datetime.now(UTC)
            await UserDirectory(self.session).announce_mentions(
                self.topic, title, author_id=author_id, post_id=post_id, comment_id=None, at=at
            )

    async def deleted(self, post_id: int) -> None:
        await run_deferred(self.session, _NEW_POSTS)  # the new posts first: the events' order
        await repository.delete(self.session, post_id)
