"""Request dependencies every service shares."""

from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis

from pinstack_kit.db import SessionDep


def from_state(name: str) -> Any:
    """`Annotated[T, from_state("x")]` injects `app.state.x`.

    Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a hop that cost
    more than the whole cached read it served.
    """

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(dependency)


RedisDep = Annotated[Redis, from_state("redis")]

__all__ = ["RedisDep", "SessionDep", "from_state"]
