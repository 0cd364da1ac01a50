"""Entry point for a service's background process: outbox relay and Kafka consumers.

SIGTERM/SIGINT stop every loop cooperatively: the relay finishes its batch and flushes the
producer, consumers commit what they handled. Metrics are served on WORKER_METRICS_PORT if set.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from typing import Protocol

from prometheus_client import start_http_server
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.db import create_engine, sessionmaker
from pinstack_kit.observability import configure_logging
from pinstack_kit.outbox import OutboxRelay, create_producer

log = logging.getLogger("pinstack.worker")


class Loop(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


async def run_loops(loops: list[Loop], *, grace_seconds: float = 20.0) -> None:
    port = os.environ.get("WORKER_METRICS_PORT")
    if port:
        start_http_server(int(port), addr="127.0.0.1" if os.environ.get("ENVIRONMENT") != "production" else "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(item.run(), name=type(item).__name__) for item in loops]
    log.info("worker started: %s", ", ".join(t.get_name() for t in tasks))
    stopped = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stopped and task.exception():
            log.error("worker loop %s crashed", task.get_name(), exc_info=task.exception())
    log.info("worker stopping")
    for item in loops:
        item.stop()
    _, pending = await asyncio.wait(tasks, timeout=grace_seconds)
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    stopped.cancel()


LoopsFactory = Callable[[AsyncEngine, async_sessionmaker[AsyncSession]], list[Loop]]


def run_worker(settings: BaseServiceSettings, consumers: LoopsFactory | None = None, *, relay: bool = True) -> None:
    """The whole worker process: logging, engine, the outbox relay and the service's consumers."""

    async def main() -> None:
        configure_logging(f"{settings.service_name}-worker", settings.log_level)
        engine = create_engine(settings)
        loops: list[Loop] = []
        if relay:
            client_id = f"{settings.service_name}-relay"
            loops.append(OutboxRelay(engine, lambda: create_producer(settings.kafka_bootstrap_servers, client_id)))
        if consumers:
            loops.extend(consumers(engine, sessionmaker(engine)))
        try:
            await run_loops(loops)
        finally:
            await engine.dispose()

    asyncio.run(main())
