"""`post-events` and `relation-events` keep the projections and fan out into the timelines."""

from datetime import UTC, datetime

import orjson
from aiokafka import ConsumerRecord
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_feed.config import Settings
from pinstack_feed.events import FOLLOW_CREATED, FOLLOW_DELETED, POST_CREATED, POST_DELETED
from pinstack_feed.timeline.service import FeedService, parse_time
from pinstack_kit.consumer import Handler, header


def feed_event_handler(settings: Settings, redis: Redis) -> Handler:
    async def on_event(session: AsyncSession, record: ConsumerRecord) -> None:
        kind = header(record, "event_type")
        feed = FeedService(session, redis, settings)
        if kind in (POST_CREATED, POST_DELETED):
            post = orjson.loads(record.value)["data"]
            if kind == POST_CREATED:
                created_at = parse_time(post.get("created_at")) or datetime.now(UTC)
                await feed.post_created(int(post["id"]), int(post["author_id"]), created_at)
            else:
                await feed.post_deleted(int(post["id"]))
        elif kind in (FOLLOW_CREATED, FOLLOW_DELETED):
            # The upstream shape: the bare follow, the envelope in headers.
            follow = orjson.loads(record.value)
            follower_id, followee_id = int(follow["follower_id"]), int(follow["followee_id"])
            if kind == FOLLOW_CREATED:
                at = parse_time(follow.get("timestamptz")) or datetime.now(UTC)
                await feed.follow_created(follower_id, followee_id, at)
            else:
                await feed.follow_deleted(follower_id, followee_id)

    return on_event
