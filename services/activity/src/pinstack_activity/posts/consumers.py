"""`post-events` keep the post projection: likes and comments need a known post and its author."""

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_activity.config import Settings
from pinstack_activity.posts.service import PostDirectory
from pinstack_contracts.events import PostCreated, PostDeleted
from pinstack_kit.consumer import Handler, payload


def post_event_handler(settings: Settings) -> Handler:
    async def on_post_event(session: AsyncSession, record: ConsumerRecord) -> None:
        match payload(record, PostCreated, PostDeleted):
            case PostCreated() as post:
                PostDirectory(session, settings).created_later(post.id, post.author_id, post.title, post.created_at)
            case PostDeleted(id=post_id):
                await PostDirectory(session, settings).deleted(post_id)

    return on_post_event
