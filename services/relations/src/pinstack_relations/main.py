from fastapi import FastAPI

from pinstack_kit.app import build_app
from pinstack_relations.config import Settings
from pinstack_relations.follows.endpoints import router as follows_router
from pinstack_relations.worker import WORKER


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return build_app(
        settings,
        title="Pinstack relations",
        routers=[follows_router],
        use_redis=False,
        clients={"users": settings.users_url},
        worker=WORKER,
    )
