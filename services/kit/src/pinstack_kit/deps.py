"""Request dependencies every service shares (the database session is `pinstack_kit.db.SessionDep`:
importing it here would load SQLAlchemy and psycopg into the gateway, which has no database)."""

from typing import Annotated, Any

from fastapi import Depends, Request
from redis.asyncio import Redis


def from_state(name: str) -> Any:
    """`Annotated[T, from_state("x")]` injects `app.state.x`.

    Async on purpose: FastAPI runs a plain `def` dependency in a worker thread, a hop that cost
    more than the whole cached read it served.
    """

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    return Depends(dependency)


RedisDep = Annotated[Redis, from_state("redis")]

__all__ = ["RedisDep", "from_state"]
