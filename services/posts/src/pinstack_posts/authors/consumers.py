"""`user-events` keep the author projection current; a deleted user's posts go with it."""

import orjson
from aiokafka import ConsumerRecord
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import Handler, header
from pinstack_posts.authors.service import AuthorService
from pinstack_posts.config import Settings
from pinstack_posts.events import USER_CREATED, USER_DELETED, USER_UPDATED
from pinstack_posts.posts.service import PostService


def user_event_handler(settings: Settings, redis: Redis) -> Handler:
    async def on_user_event(session: AsyncSession, record: ConsumerRecord) -> None:
        kind = header(record, "event_type")
        if kind not in (USER_CREATED, USER_UPDATED, USER_DELETED):
            return
        user = orjson.loads(record.value)["data"]
        author_id = int(user["id"])
        posts = PostService(session, redis, settings)
        if kind == USER_DELETED:
            # The author row first: its lock makes a concurrent new post wait, then go too.
            await AuthorService(session).remove(author_id)
            await posts.delete_by_author(author_id)
        elif await AuthorService(session).apply(user):
            await posts.forget_author(author_id)

    return on_user_event
