"""Worker loops of the auth service: consumes user events (account deletion) and purges expired
refresh tokens."""

from pinstack_auth.config import Settings
from pinstack_auth.events import CONSUMER_GROUP
from pinstack_auth.sessions import repository
from pinstack_auth.sessions.consumers import on_user_event
from pinstack_contracts.topics import USER_EVENTS
from pinstack_kit.consumer import consumer_for
from pinstack_kit.worker import LoopsFactory, Worker, run_worker


def consumers(settings: Settings) -> LoopsFactory:
    return lambda _, sessions: [
        consumer_for(settings, sessions, group=CONSUMER_GROUP, topics=[USER_EVENTS], handler=on_user_event)
    ]


WORKER = Worker(consumers, relay=False, housekeeping=[repository.PURGE_EXPIRED])

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
