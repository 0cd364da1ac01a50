"""A service's background loops: outbox relay, Kafka consumers, housekeeping.

A service declares them once (`WORKER = Worker(...)` in its worker.py). In a pod they run in a
process of their own (`python -m pinstack_<service>.worker`, run_worker), which scales and
restarts apart from the API; with WORKER_INLINE=true the API's process runs the same loops
(Worker.inline, started by app.build_app), which is how `make up` runs them: one process per
service instead of two, about 90 MB less each, where a laptop gains nothing from the isolation.

SIGTERM/SIGINT stop every loop cooperatively: consumers stop fetching, finish the record in
hand, commit its offset and leave the group; the relay finishes the batch it holds and flushes
the producer. Whatever still runs after `grace_seconds` is cancelled (its transaction rolls back,
so its records are redelivered and deduplicated), which bounds the exit below the SIGKILL of
`stack.py stop` (15 s) and of Kubernetes (30 s). A second signal cancels at once.
WORKER_METRICS_PORT, if set, serves /metrics and /healthz: 503 when a loop that beats (the
consumers, the relay) has not for STALL_SECONDS, so a wedged loop gets its pod restarted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any, Protocol
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.db import create_engine, sessionmaker
from pinstack_kit.observability import configure_logging
from pinstack_kit.outbox import OutboxRelay, create_producer, sleep_until

log = logging.getLogger("pinstack.worker")

SHUTDOWN_GRACE_SECONDS = 8.0
# Inline, the loops stop after uvicorn has finished the requests in flight (at most
# serve.GRACEFUL_SHUTDOWN_SECONDS, 10): 4 more stay under the 15 s after which stack.py kills.
INLINE_GRACE_SECONDS = 4.0
# A consumer polls every 0.5 s and the relay wakes at least every second, outages included (they
# beat while they retry); two minutes of silence means a loop is stuck, not busy.
STALL_SECONDS = 120.0


class Loop(Protocol):
    async def run(self) -> None: ...
    def stop(self) -> None: ...


class LoopCrashed(RuntimeError):
    """A loop ended by itself with an error: the process exits non-zero so a supervisor restarts it."""


def stalled(loops: Iterable[Loop], now: float | None = None) -> list[str]:
    """The loops whose heartbeat (`beat`, a monotonic time) is older than STALL_SECONDS."""
    now = time.monotonic() if now is None else now
    return [type(item).__name__ for item in loops if now - getattr(item, "beat", now) > STALL_SECONDS]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds are not worth a log line."""


def serve_health(port: int, loops: list[Loop]) -> WSGIServer:
    """/healthz (the probes) and /metrics (Prometheus) of the worker, from a thread: it answers
    even when the event loop is blocked, and says so by the beats that stopped."""
    metrics = make_wsgi_app()

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in ("/healthz", "/readyz"):
            stuck = stalled(loops)
            start_response("503 Service Unavailable" if stuck else "200 OK", [("Content-Type", "application/json")])
            return [json.dumps({"status": "stalled" if stuck else "ok", "stalled": stuck}).encode()]
        return metrics(environ, start_response)

    # loopback on a laptop; every interface in production and in a pod, whatever its ENVIRONMENT
    # (the chart sets WORKER_METRICS_HOST: the kubelet's probes and Prometheus reach the pod's IP)
    production = os.environ.get("ENVIRONMENT") == "production"
    host = os.environ.get("WORKER_METRICS_HOST") or ("0.0.0.0" if production else "127.0.0.1")
    server = make_server(host, port, app, _Server, _QuietHandler)
    threading.Thread(target=server.serve_forever, name="worker-health", daemon=True).start()
    return server


async def run_loops(loops: list[Loop], *, grace_seconds: float = SHUTDOWN_GRACE_SECONDS) -> None:
    port = os.environ.get("WORKER_METRICS_PORT")
    server = serve_health(int(port), loops) if port else None
    stop = asyncio.Event()
    hurry = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (hurry if stop.is_set() else stop).set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    tasks = _start(loops)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
    crashed = crashed_loops(tasks)
    await _stop(loops, tasks, grace_seconds, hurry)
    stopped.cancel()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.remove_signal_handler(sig)
    if server is not None:
        server.shutdown()
    if crashed:
        raise LoopCrashed(", ".join(crashed))


def _start(loops: Sequence[Loop]) -> list[asyncio.Task[None]]:
    tasks = [asyncio.create_task(item.run(), name=type(item).__name__) for item in loops]
    for task in tasks:
        task.add_done_callback(_log_crash)
    log.info("worker started: %s", ", ".join(t.get_name() for t in tasks))
    return tasks


def _crashed(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is not None


def _log_crash(task: asyncio.Task[None]) -> None:
    if _crashed(task):
        log.error("worker loop %s crashed", task.get_name(), exc_info=task.exception())


def crashed_loops(tasks: Iterable[asyncio.Task[None]]) -> list[str]:
    """The loops that ended by themselves with an error (a loop ends only when stopped)."""
    return [task.get_name() for task in tasks if _crashed(task)]


async def _stop(
    loops: Sequence[Loop], tasks: Sequence[asyncio.Task[None]], grace_seconds: float, hurry: asyncio.Event
) -> None:
    """Ask every loop to stop, wait up to `grace_seconds` (less if `hurry` is set), cancel the rest."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    log.info("worker stopping (grace %.0fs)", grace_seconds)
    for item in loops:
        item.stop()
    hurried: asyncio.Task[Any] = asyncio.create_task(hurry.wait())
    pending: set[asyncio.Task[Any]] = {task for task in tasks if not task.done()}
    while pending and not hurry.is_set():
        left = grace_seconds - (loop.time() - started)
        if left <= 0:
            break
        _, pending = await asyncio.wait([*pending, hurried], timeout=left, return_when=asyncio.FIRST_COMPLETED)
        pending.discard(hurried)
    hurried.cancel()
    for task in pending:
        log.warning("worker loop %s did not stop in time: cancelled", task.get_name())
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    log.info("worker stopped in %.1fs", loop.time() - started)


# A redelivered event is recognised for this long: longer than any topic keeps its records
# (Kafka's default retention is 7 days), so no replay can apply an event twice.
PROCESSED_EVENTS_RETENTION = "DELETE FROM processed_events WHERE processed_at < now() - interval '14 days'"


class Housekeeping:
    """Runs the service's clean-up statements (expired rows nobody reads any more) every
    `interval` seconds, each in its own transaction; a database outage only skips a round."""

    def __init__(self, engine: AsyncEngine, statements: Sequence[str], *, interval: float = 3600.0) -> None:
        self.engine = engine
        self.statements = [text(statement) for statement in statements]
        self.interval = interval
        self._stopped = asyncio.Event()

    def stop(self) -> None:
        self._stopped.set()

    async def run_once(self) -> None:
        for statement in self.statements:
            async with self.engine.begin() as conn:
                await conn.execute(statement)

    async def run(self) -> None:
        while not self._stopped.is_set():
            try:
                await self.run_once()
            except (DBAPIError, OSError) as exc:
                log.warning("housekeeping skipped a round: %s", exc)
            await sleep_until(self._stopped, self.interval)


LoopsFactory = Callable[[AsyncEngine, async_sessionmaker[AsyncSession]], list[Loop]]


@dataclass(frozen=True)
class Worker:
    """What a service runs beside its API: the outbox relay (when it has an outbox), the Kafka
    consumers its `consumers(settings)` factory builds, and housekeeping (the kit's
    processed-event log plus the service's own clean-up statements)."""

    consumers: Callable[[Any], LoopsFactory] | None = None
    relay: bool = True
    housekeeping: Sequence[str] = ()

    def loops(self, settings: BaseServiceSettings, engine: AsyncEngine) -> list[Loop]:
        loops: list[Loop] = []
        if self.relay:
            client_id = f"{settings.service_name}-relay"
            loops.append(OutboxRelay(engine, lambda: create_producer(settings.kafka_bootstrap_servers, client_id)))
        if self.consumers:
            loops.extend(self.consumers(settings)(engine, sessionmaker(engine)))
        loops.append(Housekeeping(engine, [PROCESSED_EVENTS_RETENTION, *self.housekeeping]))
        return loops

    @asynccontextmanager
    async def inline(self, settings: BaseServiceSettings) -> AsyncIterator[Callable[[], list[str]]]:
        """The loops as tasks of the running event loop (the API's), on an engine of their own so
        that a busy API cannot take their connections. Yields what `/healthz` asks: the loops that
        crashed or stalled. On exit they stop as in their own process, within the grace period."""
        engine = create_engine(settings)
        loops = self.loops(settings, engine)
        tasks = _start(loops)
        try:
            yield lambda: [*crashed_loops(tasks), *stalled(loops)]
        finally:
            await _stop(loops, tasks, INLINE_GRACE_SECONDS, asyncio.Event())
            await engine.dispose()


def run_worker(settings: BaseServiceSettings, worker: Worker) -> None:
    """The worker's own process: logging, engine, the loops, until SIGTERM or a crash."""

    async def main() -> None:
        configure_logging(f"{settings.service_name}-worker", settings.log_level)
        engine = create_engine(settings)
        try:
            await run_loops(worker.loops(settings, engine))
        finally:
            await engine.dispose()

    try:
        asyncio.run(main())
    except LoopCrashed as exc:
        raise SystemExit(f"worker loop crashed: {exc}") from None
