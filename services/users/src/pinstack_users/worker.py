"""Worker loops of the users service: relays its outbox (user events) to Kafka."""

from pinstack_kit.worker import Worker, run_worker
from pinstack_users.config import Settings

WORKER = Worker()

if __name__ == "__main__":
    run_worker(Settings(), WORKER)
