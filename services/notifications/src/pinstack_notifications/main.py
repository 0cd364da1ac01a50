from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pinstack_kit.app import build_app
from pinstack_kit.http_client import ServiceClient
from pinstack_notifications.config import Settings
from pinstack_notifications.notifications.endpoints import router as notifications_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def clients(app: FastAPI) -> AsyncIterator[None]:
        app.state.users = ServiceClient("users", settings.users_url)
        try:
            yield
        finally:
            await app.state.users.aclose()

    return build_app(
        settings,
        title="Pinstack notifications",
        routers=[notifications_router],
        use_redis=False,
        extra_lifespan=clients,
    )
