"""All SQL of the posts slice. Reads are Core statements with a bounded count per request: a page
of posts is one join with the author projection plus one `= ANY(:ids)` query each for media and
tags, whatever the page size."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Row,
    any_,
    bindparam,
    exists,
    func,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import Event
from pinstack_kit import outbox
from pinstack_kit.envelope import rfc3339_sql
from pinstack_posts.models import Author, Post, PostMedia, PostTag, Tag

posts = Post.__table__  # type: ignore[attr-defined]
media = PostMedia.__table__  # type: ignore[attr-defined]
tags = Tag.__table__  # type: ignore[attr-defined]
links = PostTag.__table__  # type: ignore[attr-defined]
authors = Author.__table__  # type: ignore[attr-defined]
p, m, t, pt, a = posts.c, media.c, tags.c, links.c, authors.c

POST = (p.id, p.author_id, p.title, p.content, p.created_at, p.updated_at)
WITH_AUTHOR = (
    *POST,
    a.username.label("author_username"),
    a.full_name.label("author_full_name"),
    a.avatar_url.label("author_avatar_url"),
)
MEDIA = (m.id, m.post_id, m.url, m.type, m.position)
NEWEST_FIRST = (p.created_at.desc(), p.id.desc())


def _ids(values: Sequence[int]) -> Any:
    return any_(bindparam("ids", list(values), type_=ARRAY(BigInteger)))


@dataclass(frozen=True)
class Filters:
    author_id: int | None = None
    tag: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive

    def where(self) -> list[ColumnElement[bool]]:
        conditions: list[ColumnElement[bool]] = []
        if self.author_id is not None:
            conditions.append(p.author_id == self.author_id)
        if self.since is not None:
            conditions.append(p.created_at >= self.since)
        if self.until is not None:
            conditions.append(p.created_at < self.until)
        if self.tag is not None:
            tagged = (
                select(pt.post_id)
                .join(tags, t.id == pt.tag_id)
                .where(pt.post_id == p.id, func.lower(t.name) == func.lower(self.tag))
            )
            conditions.append(exists(tagged))
        return conditions


# ------------------------------------------------------------------------------------- reads


async def get_post(session: AsyncSession, post_id: int) -> Row | None:
    stmt = select(*WITH_AUTHOR).select_from(posts.outerjoin(authors, a.id == p.author_id)).where(p.id == post_id)
    return (await session.execute(stmt)).first()


async def get_posts(session: AsyncSession, post_ids: Sequence[int]) -> list[Row]:
    """The posts of `post_ids` that exist, in no particular order: one query for any number."""
    stmt = select(*WITH_AUTHOR).select_from(posts.outerjoin(authors, a.id == p.author_id)).where(p.id == _ids(post_ids))
    return list((await session.execute(stmt)).all())


async def page(
    session: AsyncSession, filters: Filters, offset: int, limit: int, after: tuple[datetime, int] | None = None
) -> list[Row]:
    """Newest first; with `after` (keyset paging), only the posts strictly older than that
    (created_at, id)."""
    keyset = [tuple_(p.created_at, p.id) < tuple_(*after)] if after is not None else []
    stmt = (
        select(*WITH_AUTHOR)
        .select_from(posts.outerjoin(authors, a.id == p.author_id))
        .where(*filters.where(), *keyset)
        .order_by(*NEWEST_FIRST)
        .offset(offset)
        .limit(limit)
    )
    return list((await session.execute(stmt)).all())


async def count(session: AsyncSession, filters: Filters) -> int:
    stmt = select(func.count()).select_from(posts).where(*filters.where())
    return int(await session.scalar(stmt) or 0)


async def media_of(session: AsyncSession, post_ids: Sequence[int]) -> list[Row]:
    stmt = select(*MEDIA).where(m.post_id == _ids(post_ids)).order_by(m.post_id, m.position, m.id)
    return list((await session.execute(stmt)).all())


async def tags_of(session: AsyncSession, post_ids: Sequence[int]) -> list[Row]:
    """(post_id, name) in the order the author gave the tags."""
    stmt = (
        select(pt.post_id, t.name)
        .join(tags, t.id == pt.tag_id)
        .where(pt.post_id == _ids(post_ids))
        .order_by(pt.post_id, pt.position)
    )
    return list((await session.execute(stmt)).all())


async def author_of(session: AsyncSession, post_id: int) -> int | None:
    return await session.scalar(select(p.author_id).where(p.id == post_id))


async def ids_by_author(session: AsyncSession, author_id: int) -> list[int]:
    return list((await session.scalars(select(p.id).where(p.author_id == author_id))).all())


# ------------------------------------------------------------------------------------ writes


async def update_post(session: AsyncSession, post_id: int, user_id: int, values: dict[str, Any]) -> Row | None:
    """Apply `values` and bump `updated_at`, only if `user_id` wrote the post (one statement)."""
    stmt = (
        update(posts)
        .where(p.id == post_id, p.author_id == user_id)
        .values(**values, updated_at=func.now())
        .returning(p.id, p.author_id)
    )
    return (await session.execute(stmt)).first()


async def delete_post(session: AsyncSession, post_id: int, user_id: int) -> Row | None:
    """Delete the post (its media and tag links cascade), only if `user_id` wrote it."""
    stmt = posts.delete().where(p.id == post_id, p.author_id == user_id).returning(p.id, p.author_id)
    return (await session.execute(stmt)).first()


async def delete_by_author(session: AsyncSession, author_id: int) -> list[int]:
    stmt = posts.delete().where(p.author_id == author_id).returning(p.id)
    return list((await session.scalars(stmt)).all())


# A post's media items from three arrays, in one statement whatever their number.
_MEDIA_ITEMS = (
    "unnest(CAST(:urls AS text[]), CAST(:types AS text[]), CAST(:positions AS smallint[])) AS item(url, type, position)"
)
_ADD_MEDIA = text(
    "INSERT INTO post_media (post_id, url, type, position)"  # noqa: S608 - constants
    f" SELECT :post_id, item.url, item.type, item.position FROM {_MEDIA_ITEMS}"
)


def _media_params(items: Sequence[Mapping[str, Any]]) -> dict[str, list[Any]]:
    return {
        column: [item[field] for item in items]
        for column, field in (("urls", "url"), ("types", "type"), ("positions", "position"))
    }


async def add_media(session: AsyncSession, post_id: int, items: Sequence[Mapping[str, Any]]) -> None:
    if items:
        await session.execute(_ADD_MEDIA, {"post_id": post_id, **_media_params(items)})


async def clear_media(session: AsyncSession, post_id: int) -> None:
    await session.execute(media.delete().where(m.post_id == post_id))


# The tags of `:names` (distinct, in the order given) linked to the post whose id `target` gives: the
# missing tags are created first, sorted so that concurrent posts creating the same new tags take
# the index locks in one order. A tag that existed is found in the statement's snapshot; the only
# one missed is a tag another post created and committed while this statement ran (the insert
# waited for it, then conflicted). `linked` counts the links made, so the caller can tell.
_TAGGED = """
names AS (SELECT name, ord FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS n(name, ord)),
created AS (
    INSERT INTO tags (name) SELECT name FROM names WHERE EXISTS (SELECT FROM target) ORDER BY name
    ON CONFLICT (name) DO NOTHING RETURNING id, name
),
known AS (SELECT id, name FROM created UNION ALL SELECT id, name FROM tags JOIN names USING (name)),
linked AS (
    INSERT INTO posts_tags (post_id, tag_id, position)
    SELECT target.id, known.id, CAST(names.ord AS smallint) FROM target, names JOIN known USING (name)
    RETURNING tag_id
)"""

# The event of a new post, written by the statement that makes it: its id and time are the insert's.
_CREATED = outbox.EventRow(
    "target", aggregate_id="target.id", data={"id": "target.id", "created_at": rfc3339_sql("target.created_at")}
)

# A post by a known author, with its media, its tags and its event, in one statement (with BEGIN
# and COMMIT, three round trips in all). The author is locked like UserDirectory.require(lock=True)
# locks them: a deletion of the author waits, then removes the post too. No row: the projection
# has no such author. `media` is the wire's list of items (json_agg of the rows: id, url, type,
# position), or None.
_CREATE = text(
    "WITH author AS (SELECT * FROM authors WHERE id = :author_id FOR KEY SHARE),"  # noqa: S608 - constants
    " target AS (INSERT INTO posts (author_id, title, content) SELECT id, :title, :content FROM author"
    " RETURNING id, title, content, created_at, updated_at),"
    " items AS (INSERT INTO post_media (post_id, url, type, position)"
    f" SELECT target.id, item.url, item.type, item.position FROM target, {_MEDIA_ITEMS}"
    " RETURNING id, url, type, position),"
    f" {_TAGGED},"
    f" {_CREATED.cte}"
    " SELECT target.*, author.id AS author_id, author.username AS author_username, author.email AS author_email,"
    " author.full_name AS author_full_name, author.bio AS author_bio, author.avatar_url AS author_avatar_url,"
    " (SELECT count(*) FROM linked) AS linked,"
    " (SELECT json_agg(items ORDER BY items.position, items.id) FROM items) AS media"
    " FROM target, author"
)
_SET_TAGS = text(
    f"WITH target AS (SELECT CAST(:post_id AS bigint) AS id), {_TAGGED} SELECT count(*) FROM linked"  # noqa: S608
)
# The links the snapshot missed, in a new one.
_LINK_MISSED = text(
    "INSERT INTO posts_tags (post_id, tag_id, position)"
    " SELECT :post_id, t.id, CAST(n.ord AS smallint)"
    " FROM unnest(CAST(:names AS text[])) WITH ORDINALITY AS n(name, ord) JOIN tags t ON t.name = n.name"
    " ON CONFLICT (post_id, tag_id) DO NOTHING"
)


async def _link_missed(session: AsyncSession, post_id: int, names: Sequence[str], linked: int) -> None:
    if linked < len(names):
        await session.execute(_LINK_MISSED, {"post_id": post_id, "names": list(names)})


async def create_post(
    session: AsyncSession,
    author_id: int,
    title: str,
    content: str | None,
    names: Sequence[str],
    items: Sequence[Mapping[str, Any]],
    event: tuple[str, Event],
) -> Row | None:
    """The new post with its `author_*` columns and its `media`, linked to the tags `names`, and
    `event` (topic, event) in the outbox with the post's id and `created_at` filled in; None when
    the projection has not seen the author."""
    params = {"author_id": author_id, "title": title, "content": content, "names": list(names)}
    params |= _media_params(items)
    params |= _CREATED.params(*event)
    row = (await session.execute(_CREATE, params)).first()
    if row is not None:
        await _link_missed(session, row.id, names, row.linked)
    return row


async def add_tags(session: AsyncSession, post_id: int, names: Sequence[str]) -> None:
    """Link the post to `names` (distinct, in order), creating the tags that do not exist yet."""
    if not names:
        return
    linked = await session.scalar(_SET_TAGS, {"post_id": post_id, "names": list(names)})
    await _link_missed(session, post_id, names, linked or 0)


async def clear_tags(session: AsyncSession, post_id: int) -> None:
    await session.execute(links.delete().where(pt.post_id == post_id))
