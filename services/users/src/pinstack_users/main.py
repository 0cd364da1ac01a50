from fastapi import FastAPI

from pinstack_kit.app import build_app
from pinstack_users.config import Settings
from pinstack_users.credentials.endpoints import router as credentials_router
from pinstack_users.users.endpoints import router as users_router


def create_app(settings: Settings | None = None) -> FastAPI:
    return build_app(settings or Settings(), title="Pinstack users", routers=[users_router, credentials_router])
