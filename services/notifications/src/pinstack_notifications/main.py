from fastapi import FastAPI

from pinstack_kit.app import build_app
from pinstack_notifications.config import Settings
from pinstack_notifications.notifications.endpoints import router as notifications_router
from pinstack_notifications.worker import WORKER


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return build_app(
        settings,
        title="Pinstack notifications",
        routers=[notifications_router],
        use_redis=False,
        clients={"users": settings.users_url},
        worker=WORKER,
    )
