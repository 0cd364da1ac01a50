"""Comments and replies: created with their events (comment, mentions), listed oldest first with
an opaque cursor, deleted by their author or the post's author together with their replies."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.comments import repository
from pinstack_activity.comments.schemas import CreateComment
from pinstack_activity.config import Settings
from pinstack_activity.errors import CommentNotFound, NotAllowed, PostNotFound
from pinstack_activity.events import activity_event
from pinstack_activity.posts.service import PostDirectory
from pinstack_activity.users.service import UserDirectory
from pinstack_contracts.events import COMMENT_CREATED, CommentCreated
from pinstack_contracts.topics import ACTIVITY_EVENTS
from pinstack_kit import cursors
from pinstack_kit.envelope import rfc3339_nano
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.outbox import enqueue_event


def to_wire(row: Row, reply_count: int = 0) -> dict[str, Any]:
    return {
        "id": row.id,
        "post_id": row.post_id,
        "author_id": row.author_id,
        "parent_id": row.parent_id,
        "content": row.content,
        "created_at": rfc3339_nano(row.created_at),
        "reply_count": reply_count,
    }


class CommentService:
    def __init__(self, session: AsyncSession, settings: Settings, posts: ServiceClient | None = None) -> None:
        self.session = session
        self.topic = settings.topic(ACTIVITY_EVENTS)
        self.posts = PostDirectory(session, settings, posts)

    async def _post_author(self, post_id: int) -> int:
        """The post's author (key-share locked); a post not in the projection yet is learnt first."""
        author_id = await repository.post_author(self.session, post_id)
        if author_id is None:
            await self.posts.require(post_id)
            author_id = await repository.post_author(self.session, post_id)
        if author_id is None:
            raise PostNotFound()
        return author_id

    async def create(self, post_id: int, body: CreateComment) -> dict[str, Any]:
        await UserDirectory(self.session).require_alive(body.author_id)
        post_author_id = await self._post_author(post_id)
        parent_author_id = None
        if body.parent_id is not None:
            parent = await repository.parent(self.session, body.parent_id, post_id)
            if parent is None:
                raise CommentNotFound()
            parent_author_id = parent.author_id
        row = await repository.insert(self.session, post_id, body.author_id, body.parent_id, body.content)
        await repository.count_comments(self.session, post_id, +1)
        comment = CommentCreated(
            comment_id=row.id,
            post_id=post_id,
            post_author_id=post_author_id,
            author_id=body.author_id,
            parent_id=body.parent_id,
            parent_author_id=parent_author_id,
            content=body.content,
            created_at=rfc3339_nano(row.created_at),
        )
        event = activity_event(comment, f"{COMMENT_CREATED}:{row.id}")
        await enqueue_event(self.session, self.topic, event)
        await UserDirectory(self.session).announce_mentions(
            self.topic, body.content, author_id=body.author_id, post_id=post_id, comment_id=row.id, at=row.created_at
        )
        return to_wire(row)

    async def list_comments(
        self, post_id: int, parent_id: int | None, cursor: str | None, limit: int
    ) -> dict[str, Any]:
        after_id = cursors.decode(cursor, 1)[0] if cursor else None
        await self._post_author(post_id)
        rows = await repository.page(self.session, post_id, parent_id, after_id, limit + 1)
        page = rows[:limit]
        return {
            "comments": [to_wire(row, row.reply_count) for row in page],
            "next_cursor": cursors.encode(page[-1].id) if len(rows) > limit else None,
        }

    async def delete(self, comment_id: int, user_id: int) -> None:
        comment = await repository.for_delete(self.session, comment_id)
        if comment is None:
            raise CommentNotFound()
        if user_id not in (comment.author_id, comment.post_author_id):
            raise NotAllowed()
        removed = await repository.delete_thread(self.session, comment_id)
        await repository.count_comments(self.session, comment.post_id, -removed)
