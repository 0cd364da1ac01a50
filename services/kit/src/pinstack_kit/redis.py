"""Redis client (one pool per process) with the service's key prefix."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from pinstack_kit.config import BaseServiceSettings

# Callers treat these as "cache unavailable": reads fall back to Postgres, writes still succeed.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError, OSError)


def create_redis(settings: BaseServiceSettings) -> Redis:
    return Redis.from_url(
        settings.redis_url,
        socket_timeout=0.5,
        socket_connect_timeout=0.5,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=1),
        max_connections=64,
    )
