"""Request dependencies every service shares."""

from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis

from pinstack_kit.db import SessionDep


def _redis(request: Request) -> Redis:
    return request.app.state.redis


RedisDep = Annotated[Redis, Depends(_redis)]

__all__ = ["RedisDep", "SessionDep"]
