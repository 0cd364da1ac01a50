"""Worker loops of the notifications service: one consumer (group `notifications`) for
relation events (follow notifications), activity events (like, comment, reply and mention
notifications) and user events (projection, cascade of deleted users).
It publishes nothing, so it runs no outbox relay."""

from aiokafka import ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from pinstack_contracts.topics import ACTIVITY_EVENTS, RELATION_EVENTS, USER_EVENTS
from pinstack_kit.consumer import Handler, consumer_for
from pinstack_kit.worker import LoopsFactory, Worker, run_worker
from pinstack_notifications.config import Settings
from pinstack_notifications.events import CONSUMER_GROUP
from pinstack_notifications.notifications.consumers import on_activity_event, on_relation_event, user_event_handler


def by_topic(settings: Settings) -> Handler:
    handlers = {
        settings.topic(RELATION_EVENTS): on_relation_event,
        settings.topic(ACTIVITY_EVENTS): on_activity_event,
        settings.topic(USER_EVENTS): user_event_handler(),
    }

    async def handle(session: AsyncSession, record: ConsumerRecord) -> None:
        await handlers[record.topic](session, record)

    return handle


def consumers(settings: Settings) -> LoopsFactory:
    return lambda _, sessions: [
        consumer_for(
            settings,
            sessions,
            group=CONSUMER_GROUP,
            topics=[RELATION_EVENTS, ACTIVITY_EVENTS, USER_EVENTS],
            handler=by_topic(settings),
        )
    ]


WORKER = Worker(consumers, relay=False)

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
