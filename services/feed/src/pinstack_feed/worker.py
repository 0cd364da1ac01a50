"""Worker loops of the feed service: consumes post and follow events into the projections
and the Redis timelines. The feed publishes no events, so it runs no outbox relay."""

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pinstack_contracts.topics import POST_EVENTS, RELATION_EVENTS
from pinstack_feed.config import Settings
from pinstack_feed.events import CONSUMER_GROUP
from pinstack_feed.timeline.consumers import feed_event_handler
from pinstack_kit.consumer import consumer_for
from pinstack_kit.redis import create_redis
from pinstack_kit.worker import Loop, LoopsFactory, Worker, run_worker


def consumers(settings: Settings) -> LoopsFactory:
    def build(_: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> list[Loop]:
        handler = feed_event_handler(settings, create_redis(settings))  # lives as long as the process
        topics = [POST_EVENTS, RELATION_EVENTS]
        return [consumer_for(settings, sessions, group=CONSUMER_GROUP, topics=topics, handler=handler)]

    return build


WORKER = Worker(consumers, relay=False)

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
