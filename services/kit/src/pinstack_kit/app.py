"""The service application factory: one place that wires what every service has.

The lifespan owns the long-lived clients (engine, Redis, clients of other services); a service
adds its own through `extra_lifespan`. Readiness checks are registered for each dependency the service uses.

Graceful shutdown under uvicorn: on SIGTERM `/readyz` turns 503 at once and responses carry
`Connection: close` (observability.RequestMiddleware), while the server keeps serving for SHUTDOWN_DRAIN_SECONDS (default 5 in
production, 0 elsewhere) so a load balancer takes the instance out of rotation; then uvicorn stops
accepting connections and finishes the requests in flight (for at most
serve.GRACEFUL_SHUTDOWN_SECONDS) before the lifespan closes the clients. A second SIGTERM skips
the drain.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, nullcontext
from types import FrameType
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, FastAPI, Request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from starlette.responses import Response

from pinstack_kit import health
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.envelope import error_response
from pinstack_kit.errors import ServiceUnavailable, install_error_handlers
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.observability import RequestMiddleware, configure_logging, metrics_endpoint
from pinstack_kit.redis import create_redis

if TYPE_CHECKING:
    from pinstack_kit.worker import Worker

ExtraLifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]

log = logging.getLogger("pinstack.app")


class ShuttingDown(Exception):
    """Readiness answer of an instance that received SIGTERM and drains."""


def served_by_uvicorn() -> bool:
    """Whether uvicorn owns this process (it installs its SIGTERM handler before the lifespan
    starts), rather than tests or another server driving the app in-process."""
    owner = getattr(signal.getsignal(signal.SIGTERM), "__self__", None)
    return threading.current_thread() is threading.main_thread() and type(owner).__module__.startswith("uvicorn")


# Collections of the youngest generation start after this many more allocations than
# deallocations (CPython: 700). A request's own objects are freed by reference counting when it
# ends; at 700 the in-flight requests alone started a collection every few milliseconds.
GC_YOUNG_THRESHOLD = 10_000


def settle_heap() -> None:
    """Garbage collection tuned for a server process (call it only when uvicorn owns the
    process: the settings are process-wide). What startup built (modules, routes, pydantic
    models, clients) lives as long as the process and is frozen, so no collection walks it
    again: under load a full collection walked it in 60-70 ms with the event loop stopped, about
    once a second. With that and young collections every 10,000 net allocations, the collector's
    share of the gateway's and the users service's CPU under load went from 14-17 % to ~1 %
    (gc.callbacks timing, wrk on GET /users/{id})."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


@contextmanager
def drain_on_sigterm(app: FastAPI, seconds: float) -> Iterator[None]:
    """Put a drain phase in front of uvicorn's own SIGTERM handling (see the module docstring).

    Only when uvicorn owns the signal (it installs its handler before the lifespan starts): an
    app driven in-process by tests or another server keeps the signal handling it has.
    """
    uvicorn_exit = signal.getsignal(signal.SIGTERM)
    if not served_by_uvicorn():
        yield
        return
    assert callable(uvicorn_exit)
    loop = asyncio.get_running_loop()

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if app.state.draining or seconds <= 0:
            app.state.draining = True
            uvicorn_exit(sig, frame)
            return
        app.state.draining = True
        log.info("SIGTERM: not ready, draining for %.1fs before shutting down", seconds)
        loop.call_soon_threadsafe(loop.call_later, seconds, uvicorn_exit, sig, None)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, uvicorn_exit)


async def _dependency_down(request: Request, exc: Exception) -> Response:
    """Redis (or another socket) unreachable: 503 like a database outage, never a 500."""
    request.state.failure = f"dependency unavailable: {type(exc).__name__}: {exc}"  # the 503's log line
    return error_response(ServiceUnavailable.status, ServiceUnavailable.message)


def build_app(
    settings: BaseServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    use_database: bool = True,
    use_redis: bool = True,
    clients: Mapping[str, str] | None = None,
    extra_lifespan: ExtraLifespan | None = None,
    worker: Worker | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.draining = False
        served = served_by_uvicorn()  # asked before drain_on_sigterm installs its own handler

        async def accepting() -> None:
            if app.state.draining:
                raise ShuttingDown()

        app.state.readiness_checks = {"shutdown": accepting}
        if use_database:
            # imported here: a service without a database (the gateway) never loads SQLAlchemy,
            # psycopg or, through the worker, aiokafka, ~30 MB of its resident memory
            from sqlalchemy import text

            from pinstack_kit.db import create_engine, sessionmaker, track_pool

            engine = create_engine(settings)
            track_pool(engine)
            app.state.engine = engine
            app.state.sessionmaker = sessionmaker(engine)

            async def database() -> None:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))

            app.state.readiness_checks["postgres"] = database
        if use_redis:
            app.state.redis = create_redis(settings)
            app.state.readiness_checks["redis"] = app.state.redis.ping
        # Other services this one calls: app.state.<name> is a ServiceClient (pooled, breaker).
        upstreams = {
            name: ServiceClient(name, url, timeout=settings.upstream_timeout_seconds)
            for name, url in (clients or {}).items()
        }
        for name, client in upstreams.items():
            setattr(app.state, name, client)
        inline = worker.inline(settings) if worker and settings.worker_inline else nullcontext(None)
        try:
            with drain_on_sigterm(app, settings.drain_seconds):
                async with extra_lifespan(app) if extra_lifespan else nullcontext(), inline as stuck_loops:
                    app.state.stuck_loops = stuck_loops  # /healthz fails while one has crashed or stalled
                    if served:
                        settle_heap()
                    yield
        finally:
            for client in upstreams.values():
                await client.aclose()
            if use_redis:
                await app.state.redis.aclose()
            if use_database:
                await app.state.engine.dispose()

    # Our metrics are Prometheus' and our logs JSON lines (observability.py). FastAPI's native
    # OpenTelemetry bridge, on by default, asked three global providers and os.environ on every
    # request whether it had anything to do: 3-4 % of the gateway's CPU for nothing.
    fastapi_kwargs.setdefault("telemetry", {"tracing": False, "metrics": False, "logs": False})
    app = FastAPI(title=title, lifespan=lifespan, **fastapi_kwargs)
    install_error_handlers(app)
    for dependency_error in (RedisConnectionError, RedisTimeoutError, ConnectionError):
        app.add_exception_handler(dependency_error, _dependency_down)
    app.add_middleware(
        RequestMiddleware,
        access_log=settings.access_log,
        deadline_seconds=settings.request_timeout_seconds,
        state=app.state,
    )
    app.include_router(health.router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    return app
