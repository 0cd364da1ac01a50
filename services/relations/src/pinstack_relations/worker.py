"""Worker loops of the relations service: relays its outbox (relation events) to Kafka and
consumes user events (projection, cascade of deleted users)."""

from pinstack_contracts.topics import USER_EVENTS
from pinstack_kit.consumer import consumer_for
from pinstack_kit.worker import LoopsFactory, Worker, run_worker
from pinstack_relations.config import Settings
from pinstack_relations.events import CONSUMER_GROUP
from pinstack_relations.follows.consumers import user_event_handler


def consumers(settings: Settings) -> LoopsFactory:
    return lambda _, sessions: [
        consumer_for(
            settings, sessions, group=CONSUMER_GROUP, topics=[USER_EVENTS], handler=user_event_handler(settings)
        )
    ]


WORKER = Worker(consumers)

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
