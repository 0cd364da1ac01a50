"""The service application factory: one place that wires what every service has.

The lifespan owns the long-lived clients (engine, Redis, clients of other services); a service
adds its own through `extra_lifespan`. Readiness checks are registered for each dependency the service uses.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import Any

from fastapi import APIRouter, FastAPI
from sqlalchemy import text

from pinstack_kit import health
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.db import create_engine, sessionmaker, track_pool
from pinstack_kit.errors import install_error_handlers
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.observability import ObservabilityMiddleware, configure_logging, metrics_endpoint
from pinstack_kit.redis import create_redis

ExtraLifespan = Callable[[FastAPI], AbstractAsyncContextManager[Any]]


def build_app(
    settings: BaseServiceSettings,
    *,
    title: str,
    routers: Sequence[APIRouter],
    use_database: bool = True,
    use_redis: bool = True,
    clients: Mapping[str, str] | None = None,
    extra_lifespan: ExtraLifespan | None = None,
    **fastapi_kwargs: Any,
) -> FastAPI:
    configure_logging(settings.service_name, settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.readiness_checks = {}
        if use_database:
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
        upstreams = {name: ServiceClient(name, url) for name, url in (clients or {}).items()}
        for name, client in upstreams.items():
            setattr(app.state, name, client)
        try:
            async with extra_lifespan(app) if extra_lifespan else nullcontext():
                yield
        finally:
            for client in upstreams.values():
                await client.aclose()
            if use_redis:
                await app.state.redis.aclose()
            if use_database:
                await app.state.engine.dispose()

    app = FastAPI(title=title, lifespan=lifespan, **fastapi_kwargs)
    install_error_handlers(app)
    app.add_middleware(ObservabilityMiddleware)
    app.include_router(health.router)
    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    return app
