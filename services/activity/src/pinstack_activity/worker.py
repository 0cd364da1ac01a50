"""Worker loops of the activity service: relays its outbox (activity events) to Kafka and
keeps the post and user projections from their events."""

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pinstack_activity.config import Settings
from pinstack_activity.events import CONSUMER_GROUP
from pinstack_activity.posts import repository
from pinstack_activity.posts.consumers import post_event_handler
from pinstack_activity.users import repository as user_repository
from pinstack_activity.users.consumers import user_event_handler
from pinstack_contracts.topics import POST_EVENTS, USER_EVENTS
from pinstack_kit.consumer import consumer_for
from pinstack_kit.worker import Loop, LoopsFactory, Worker, run_worker


def consumers(settings: Settings) -> LoopsFactory:
    posts, users = post_event_handler(settings), user_event_handler()

    async def on_event(session: AsyncSession, record: ConsumerRecord) -> None:
        # Each handler acts on its own event types and ignores the rest.
        await posts(session, record)
        await users(session, record)

    def build(_: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> list[Loop]:
        topics = [POST_EVENTS, USER_EVENTS]
        return [consumer_for(settings, sessions, group=CONSUMER_GROUP, topics=topics, handler=on_event)]

    return build


WORKER = Worker(consumers, housekeeping=[repository.PURGE_TOMBSTONES, user_repository.PURGE_TOMBSTONES])

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
