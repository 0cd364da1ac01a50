"""Worker loops of the posts service: relays its outbox (post events) to Kafka and keeps
the author projection from user events."""

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pinstack_contracts.topics import USER_EVENTS
from pinstack_kit.consumer import consumer_for
from pinstack_kit.redis import create_redis
from pinstack_kit.worker import Loop, LoopsFactory, Worker, run_worker
from pinstack_posts.config import Settings
from pinstack_posts.events import CONSUMER_GROUP
from pinstack_posts.posts.consumers import user_event_handler


def consumers(settings: Settings) -> LoopsFactory:
    def build(_: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> list[Loop]:
        handler = user_event_handler(settings, create_redis(settings))  # lives as long as the process
        return [consumer_for(settings, sessions, group=CONSUMER_GROUP, topics=[USER_EVENTS], handler=handler)]

    return build


WORKER = Worker(consumers)

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
