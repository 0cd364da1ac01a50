"""All SQL of comments. A comment's replies go with it: one recursive delete that returns every
id, so the post's comment counter drops by exactly what went."""

from __future__ import annotations

from sqlalchemy import BigInteger, Row, func, literal, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.models import Comment, Post

comments = Comment.__table__  # type: ignore[attr-defined]
posts = Post.__table__  # type: ignore[attr-defined]
c, p = comments.c, posts.c

COMMENT = (c.id, c.post_id, c.author_id, c.parent_id, c.content, c.created_at)


async def post_author(session: AsyncSession, post_id: int) -> int | None:
    """The post's author, key-share locked until commit: a concurrent `post_deleted` waits for
    the new comment, then takes it along."""
    stmt = select(p.author_id).where(p.id == post_id).with_for_update(read=True, key_share=True)
    return await session.scalar(stmt)


async def parent(session: AsyncSession, comment_id: int, post_id: int) -> Row | None:
    """The comment replied to, if it is on `post_id`; locked against a concurrent delete."""
    stmt = (
        select(c.id, c.author_id)
        .where(c.id == comment_id, c.post_id == post_id)
        .with_for_update(read=True, key_share=True)
    )
    return (await session.execute(stmt)).first()


async def insert(session: AsyncSession, post_id: int, author_id: int, parent_id: int | None, content: str) -> Row:
    values = {"post_id": post_id, "author_id": author_id, "parent_id": parent_id, "content": content}
    return (await session.execute(comments.insert().values(**values).returning(*COMMENT))).one()


async def count_comments(session: AsyncSession, post_id: int, delta: int) -> None:
    await session.execute(update(posts).where(p.id == post_id).values(comment_count=p.comment_count + delta))


async def page(
    session: AsyncSession, post_id: int, parent_id: int | None, after_id: int | None, limit: int
) -> list[Row]:
    """Oldest first: a post's top-level comments, or the replies to `parent_id`, each with its
    number of direct replies (counted in the same statement)."""
    reply = comments.alias("reply")
    replies = select(func.count()).where(reply.c.parent_id == c.id).scalar_subquery()
    stmt = select(*COMMENT, replies.label("reply_count")).where(c.post_id == post_id)
    stmt = stmt.where(c.parent_id.is_(None) if parent_id is None else c.parent_id == parent_id)
    if after_id is not None:
        stmt = stmt.where(c.id > literal(after_id, BigInteger))
    return list((await session.execute(stmt.order_by(c.id).limit(limit))).all())


async def for_delete(session: AsyncSession, comment_id: int) -> Row | None:
    """The comment and its post's author, the comment locked until commit."""
    stmt = (
        select(c.id, c.post_id, c.author_id, p.author_id.label("post_author_id"))
        .join(posts, p.id == c.post_id)
        .where(c.id == comment_id)
        .with_for_update(of=comments)
    )
    return (await session.execute(stmt)).first()


_DELETE_THREAD = text(
    "WITH RECURSIVE thread AS ("
    " SELECT id FROM comments WHERE id = :id"
    " UNION ALL SELECT r.id FROM comments r JOIN thread t ON r.parent_id = t.id)"
    " DELETE FROM comments WHERE id IN (SELECT id FROM thread) RETURNING id"
)


async def delete_thread(session: AsyncSession, comment_id: int) -> int:
    """Delete the comment and every reply below it; returns how many went."""
    return len((await session.execute(_DELETE_THREAD, {"id": comment_id})).all())
