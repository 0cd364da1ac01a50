"""`post-events` and `relation-events` keep the projections and fan out into the timelines."""

from datetime import UTC, datetime

from aiokafka import ConsumerRecord
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.events import FollowCreated, FollowDeleted, PostCreated, PostDeleted
from pinstack_feed.config import Settings
from pinstack_feed.timeline.service import FeedService, parse_time
from pinstack_kit.consumer import Handler, payload


def feed_event_handler(settings: Settings, redis: Redis) -> Handler:
    async def on_event(session: AsyncSession, record: ConsumerRecord) -> None:
        feed = FeedService(session, redis, settings)
        match payload(record, PostCreated, PostDeleted, FollowCreated, FollowDeleted):
            case PostCreated() as post:
                created_at = parse_time(post.created_at) or datetime.now(UTC)
                await feed.post_created(post.id, post.author_id, created_at)
            case PostDeleted(id=post_id):
                await feed.post_deleted(post_id)
            case FollowCreated() as follow:
                at = parse_time(follow.timestamptz) or datetime.now(UTC)
                await feed.follow_created(follow.follower_id, follow.followee_id, at)
            case FollowDeleted() as unfollow:
                await feed.follow_deleted(unfollow.follower_id, unfollow.followee_id)

    return on_event
