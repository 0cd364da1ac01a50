"""`post-events` keep the post projection: likes and comments need a known post and its author."""

import orjson
from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.config import Settings
from pinstack_activity.events import POST_CREATED, POST_DELETED
from pinstack_activity.posts.service import PostDirectory
from pinstack_kit.consumer import Handler, header


def post_event_handler(settings: Settings) -> Handler:
    async def on_post_event(session: AsyncSession, record: ConsumerRecord) -> None:
        kind = header(record, "event_type")
        if kind not in (POST_CREATED, POST_DELETED):
            return
        post = orjson.loads(record.value)["data"]
        directory = PostDirectory(session, settings)
        if kind == POST_CREATED:
            await directory.created(
                int(post["id"]), int(post["author_id"]), post.get("title") or "", post.get("created_at")
            )
        else:
            await directory.deleted(int(post["id"]))

    return on_post_event
