from fastapi import FastAPI

from pinstack_feed.config import Settings
from pinstack_feed.timeline.endpoints import router as timeline_router
from pinstack_feed.worker import WORKER
from pinstack_kit.app import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return build_app(settings, title="Pinstack feed", routers=[timeline_router], worker=WORKER)
