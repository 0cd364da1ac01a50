"""`user-events` keep the author projection current; a deleted user's posts go with it."""

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_kit.consumer import Handler
from pinstack_kit.user_projection import apply_user_events
from pinstack_posts.config import Settings
from pinstack_posts.posts.service import PostService
from pinstack_posts.users.service import UserDirectory


def user_event_handler(settings: Settings, redis: Redis) -> Handler:
    async def delete_posts(session: AsyncSession, author_id: int) -> None:
        await PostService(session, redis, settings).delete_by_author(author_id)

    async def forget_cached_posts(session: AsyncSession, author_id: int) -> None:
        await PostService(session, redis, settings).forget_author(author_id)

    return apply_user_events(UserDirectory, cascade=delete_posts, changed=forget_cached_posts)
