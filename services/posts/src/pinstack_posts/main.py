from fastapi import FastAPI

from pinstack_kit.app import build_app
from pinstack_posts.config import Settings
from pinstack_posts.posts.endpoints import router as posts_router
from pinstack_posts.worker import WORKER


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return build_app(
        settings, title="Pinstack posts", routers=[posts_router], clients={"users": settings.users_url}, worker=WORKER
    )
