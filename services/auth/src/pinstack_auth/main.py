from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from pinstack_auth.config import Settings
from pinstack_auth.keys.endpoints import router as keys_router
from pinstack_auth.keys.signing import SigningKeys
from pinstack_auth.sessions.endpoints import router as sessions_router
from pinstack_auth.worker import WORKER
from pinstack_kit.app import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def signing_keys(app: FastAPI) -> AsyncIterator[None]:
        app.state.keys = SigningKeys(settings)
        yield

    return build_app(
        settings,
        title="Pinstack auth",
        routers=[sessions_router, keys_router],
        use_redis=False,
        clients={"users": settings.users_url},
        extra_lifespan=signing_keys,
        worker=WORKER,
    )
