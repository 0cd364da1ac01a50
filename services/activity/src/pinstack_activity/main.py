from fastapi import FastAPI

from pinstack_activity.comments.endpoints import router as comments_router
from pinstack_activity.config import Settings
from pinstack_activity.reactions.endpoints import router as reactions_router
from pinstack_activity.worker import WORKER
from pinstack_kit.app import build_app


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # Redis is not used: counters live with their rows, and a stats page is one statement.
    return build_app(
        settings,
        title="Pinstack activity",
        routers=[reactions_router, comments_router],
        use_redis=False,
        clients={"posts": settings.posts_url},
        worker=WORKER,
    )
