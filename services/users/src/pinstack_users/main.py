from fastapi import FastAPI

from pinstack_kit.app import build_app
from pinstack_users.config import Settings
from pinstack_users.credentials import hashing
from pinstack_users.credentials.endpoints import router as credentials_router
from pinstack_users.users.endpoints import router as users_router
from pinstack_users.worker import WORKER


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    hashing.configure(settings)
    return build_app(settings, title="Pinstack users", routers=[users_router, credentials_router], worker=WORKER)
