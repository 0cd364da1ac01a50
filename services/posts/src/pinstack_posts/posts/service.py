"""Posts: cache-aside reads of finished JSON, batch-loaded pages, writes that emit events through
the outbox and invalidate the cache after commit."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

from redis.asyncio import Redis
from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import PostCreated, PostDeleted, PostUpdated
from pinstack_contracts.limits import PAGE_SIZE_DEFAULT
from pinstack_contracts.topics import POST_EVENTS
from pinstack_kit import cursors
from pinstack_kit.cache import JsonCache
from pinstack_kit.db import after_commit
from pinstack_kit.envelope import dumps, rfc3339
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.outbox import enqueue_event
from pinstack_posts.config import Settings
from pinstack_posts.errors import NotTheAuthor, PostNotFound, UserNotFound
from pinstack_posts.events import post_event
from pinstack_posts.posts import repository
from pinstack_posts.posts.repository import Filters
from pinstack_posts.posts.schemas import CreatePost, ListQuery, UpdatePost
from pinstack_posts.users.service import UserDirectory

# Contract §1.3: shown when the author is not (or no longer) in the projection.
PLACEHOLDER_AUTHOR = {
    "id": 0,
    "username": "unknown",
    "full_name": "Unknown Author",
    "avatar_url": "http://unknown.unknown",
}


def _media_item(row: Row) -> dict[str, Any]:
    return {"id": row.id, "url": row.url, "type": row.type, "position": row.position}


def _tag_items(names: Sequence[str]) -> list[dict[str, Any]]:
    return [{"id": 0, "name": name} for name in names]  # tag ids are always 0 on the wire


def _with_media_and_tags(post: dict[str, Any], media: Sequence[dict[str, Any]], tags: Sequence[str]) -> dict[str, Any]:
    if media:
        post["media"] = media
    if tags:
        post["tags"] = _tag_items(tags)
    return post


def to_wire(row: Row, media: Sequence[dict[str, Any]], tags: Sequence[str]) -> dict[str, Any]:
    """The contract's post (routes 14, 15, 17): nested author, empty parts omitted."""
    if row.author_username is None:
        author = dict(PLACEHOLDER_AUTHOR)
    else:
        author = {"id": row.author_id, "username": row.author_username}
        if row.author_full_name is not None:
            author["full_name"] = row.author_full_name
        if row.author_avatar_url is not None:
            author["avatar_url"] = row.author_avatar_url
    post: dict[str, Any] = {"id": row.id, "author": author, "title": row.title}
    if row.content:
        post["content"] = row.content
    post["created_at"] = rfc3339(row.created_at)
    post["updated_at"] = rfc3339(row.updated_at)
    return _with_media_and_tags(post, media, tags)


def to_created_wire(row: Row, media: Sequence[dict[str, Any]], tags: Sequence[str]) -> dict[str, Any]:
    """The contract's create answer (route 16): the author flattened into `author_*` fields."""
    post: dict[str, Any] = {"id": row.id, "title": row.title}
    if row.content:
        post["content"] = row.content
    post["created_at"] = rfc3339(row.created_at)
    post["updated_at"] = rfc3339(row.updated_at)
    for field in ("author_id", "author_username", "author_email"):
        post[field] = getattr(row, field)
    for field in ("author_full_name", "author_bio", "author_avatar_url"):
        value = getattr(row, field)
        if value is not None:
            post[field] = value
    return _with_media_and_tags(post, media, tags)


# Python's datetimes span the years 1-9999, in UTC too. A bound beyond them (9999-12-31T23:59:59Z,
# or 0001-01-01T00:00:00+05:00, which is in year 0 in UTC) is clamped to the edge, which no post
# comes near, instead of overflowing into a 500. The latest leaves room for the second added below.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC) - timedelta(seconds=1)


def _clamped(ts: datetime) -> datetime:
    try:
        return min(ts.astimezone(UTC), LATEST)
    except OverflowError:
        return EARLIEST if ts.year == 1 else LATEST


def wire_bounds(after: datetime | None, before: datetime | None) -> tuple[datetime | None, datetime | None]:
    """Strict `created_after`/`created_before` on the times clients see, which are whole seconds:
    a post shown as 12:00:00 is not after 12:00:00, even if it was stored at 12:00:00.4.
    Returns (inclusive lower, exclusive upper) bounds on the stored times, in UTC."""
    since = until = None
    if after is not None:
        since = _clamped(after).replace(microsecond=0) + timedelta(seconds=1)
    if before is not None:
        before = _clamped(before)
        until = before.replace(microsecond=0) + timedelta(seconds=1 if before.microsecond else 0)
    return since, until


class PostCache:
    """Finished wire JSON of one post under `post:{id}` (the kit's JsonCache: tombstones on forget,
    fills only empty keys, so a slow reader cannot put an old post back)."""

    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.cache = JsonCache(redis, name="post", prefix=settings.key_prefix, ttl=settings.cache_ttl_seconds)

    def key(self, post_id: int) -> str:
        return self.cache.key("post", post_id)

    async def get_many(self, post_ids: Sequence[int]) -> list[bytes | None]:
        return await self.cache.get_many([self.key(post_id) for post_id in post_ids])

    async def put_many(self, payloads: Mapping[int, bytes]) -> None:
        await self.cache.put_many({self.key(post_id): payload for post_id, payload in payloads.items()})

    async def forget(self, post_ids: Sequence[int]) -> None:
        await self.cache.forget(self.key(post_id) for post_id in post_ids)


class PostService:
    def __init__(self, session: AsyncSession, redis: Redis, settings: Settings) -> None:
        self.session = session
        self.cache = PostCache(redis, settings)
        self.topic = settings.topic(POST_EVENTS)

    async def _details(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """Wire posts for `rows` with their media and tags: two queries for any number of posts."""
        if not rows:
            return []
        ids = [row.id for row in rows]
        media: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for item in await repository.media_of(self.session, ids):
            media[item.post_id].append(_media_item(item))
        tags: dict[int, list[str]] = defaultdict(list)
        for link in await repository.tags_of(self.session, ids):
            tags[link.post_id].append(link.name)
        return [to_wire(row, media[row.id], tags[row.id]) for row in rows]

    async def _load(self, post_id: int) -> dict[str, Any]:
        row = await repository.get_post(self.session, post_id)
        if row is None:
            raise PostNotFound()
        return (await self._details([row]))[0]

    async def _payloads(self, post_ids: Sequence[int]) -> list[bytes | None]:
        """Finished wire JSON of each of `post_ids` (None: no such post) from the per-post cache:
        one MGET, and three queries for the misses, which are then cached."""
        cached = await self.cache.get_many(post_ids)
        missing = [post_id for post_id, payload in zip(post_ids, cached, strict=True) if payload is None]
        if not missing:
            return cached
        loaded = {
            post["id"]: dumps(post) for post in await self._details(await repository.get_posts(self.session, missing))
        }
        await self.cache.put_many(loaded)
        return [payload or loaded.get(post_id) for post_id, payload in zip(post_ids, cached, strict=True)]

    async def get(self, post_id: int) -> bytes:
        (payload,) = await self._payloads([post_id])
        if payload is None:
            raise PostNotFound()
        return payload

    async def batch(self, post_ids: Sequence[int]) -> bytes:
        """`{"posts": [...]}` for `post_ids` in the order asked, unknown ids skipped."""
        return b'{"posts":[' + b",".join(p for p in await self._payloads(post_ids) if p) + b"]}"

    async def list_posts(self, query: ListQuery) -> tuple[dict[str, Any], str | None]:
        """A page and the cursor of the next one. With a cursor the offset is not used."""
        since, until = wire_bounds(query.created_after, query.created_before)
        filters = Filters(author_id=query.author_id or None, tag=query.tag or None, since=since, until=until)
        limit = query.limit or PAGE_SIZE_DEFAULT
        after = cursors.decode_time_cursor(query.cursor) if query.cursor else None
        offset = 0 if after else query.offset
        rows = await repository.page(self.session, filters, offset, limit + 1, after)
        more, rows = len(rows) > limit, rows[:limit]
        if rows and not more and after is None:
            total = offset + len(rows)  # the last page: no need to count
        else:
            total = await repository.count(self.session, filters)
        next_cursor = cursors.time_cursor(rows[-1].created_at, rows[-1].id) if more else None
        return {"posts": await self._details(rows), "total": total}, next_cursor

    async def create(self, body: CreatePost, users: ServiceClient) -> dict[str, Any]:
        tags = body.tags or []
        # id and created_at are the insert's: the statement fills them into the event
        created = PostCreated(id=0, author_id=body.author_id, title=body.title, created_at="", tags=tags)
        event = (self.topic, post_event(created))
        items = [item.model_dump() for item in body.media_items or ()]
        args = (self.session, body.author_id, body.title, body.content or None, tags, items, event)
        row = await repository.create_post(*args)
        if row is None:  # an author the events have not brought yet: looked up once, and locked
            await UserDirectory(self.session, users).require(body.author_id, lock=True)
            row = await repository.create_post(*args)
        if row is None:  # not while require's lock holds; a clear 404 rather than a 500 if ever
            raise UserNotFound()
        return to_created_wire(row, row.media or [], tags)

    async def update(self, post_id: int, body: UpdatePost) -> dict[str, Any]:
        values = {name: getattr(body, name) for name in ("title", "content") if getattr(body, name)}
        changed = await repository.update_post(self.session, post_id, body.user_id, values)
        if changed is None:
            await self._refuse(post_id)
        if body.media_items:
            await repository.clear_media(self.session, post_id)
            await repository.add_media(self.session, post_id, [item.model_dump() for item in body.media_items])
        if body.tags:
            await repository.clear_tags(self.session, post_id)
            await repository.add_tags(self.session, post_id, body.tags)
        post = await self._load(post_id)
        tags = [tag["name"] for tag in post.get("tags", ())]
        updated = PostUpdated(
            id=post_id, author_id=body.user_id, title=post["title"], created_at=post["created_at"], tags=tags
        )
        await enqueue_event(self.session, self.topic, post_event(updated))
        after_commit(self.session, lambda: self.cache.forget([post_id]))
        return post

    async def delete(self, post_id: int, user_id: int) -> None:
        deleted = await repository.delete_post(self.session, post_id, user_id)
        if deleted is None:
            await self._refuse(post_id)
        await enqueue_event(self.session, self.topic, post_event(PostDeleted(id=post_id, author_id=user_id)))
        after_commit(self.session, lambda: self.cache.forget([post_id]))

    async def _refuse(self, post_id: int) -> NoReturn:
        """Why a write that required authorship changed nothing: no such post, or someone else's."""
        if await repository.author_of(self.session, post_id) is None:
            raise PostNotFound()
        raise NotTheAuthor()

    # Called from the `user-events` consumer, whose runner runs the after-commit callbacks too:
    # the cache entries are dropped once the change is visible, not before.

    async def delete_by_author(self, author_id: int) -> None:
        post_ids = await repository.delete_by_author(self.session, author_id)
        for post_id in post_ids:
            deleted = PostDeleted(id=post_id, author_id=author_id)
            await enqueue_event(self.session, self.topic, post_event(deleted))
        after_commit(self.session, lambda: self.cache.forget(post_ids))

    async def forget_author(self, author_id: int) -> None:
        """Cached posts embed their author: drop them all when the profile changed."""
        post_ids = await repository.ids_by_author(self.session, author_id)
        after_commit(self.session, lambda: self.cache.forget(post_ids))
