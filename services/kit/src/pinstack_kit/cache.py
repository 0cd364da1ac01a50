"""Cache-aside of finished wire JSON in Redis, safe against a slow reader refilling stale data.

Forgetting a key leaves a short-lived tombstone rather than no key, and a read fills only an
empty key (SET NX). A reader that loaded a row before a change committed and stores it after
the invalidation therefore cannot put the old value back for the whole TTL: readers go to the
database until the tombstone expires. Redis being down never fails a request: reads miss,
writes are skipped, and the TTL bounds what an invalidation lost while Redis was away.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence

from redis.asyncio import Redis

from pinstack_kit.observability import CACHE_REQUESTS
from pinstack_kit.redis import REDIS_DOWN

log = logging.getLogger("pinstack.cache")

TOMBSTONE = b"\x00forgotten"


class JsonCache:
    def __init__(self, redis: Redis, *, name: str, prefix: str, ttl: int, tombstone_seconds: int = 10) -> None:
        self.redis = redis
        self.name = name
        self.prefix = prefix
        self.ttl = ttl
        self.tombstone_seconds = tombstone_seconds

    def key(self, *parts: object) -> str:
        return self.prefix + ":".join(str(p) for p in parts)

    async def get(self, key: str) -> bytes | None:
        return (await self.get_many([key]))[0]

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """`get` of several keys in one round trip (MGET), in their order."""
        if not keys:
            return []
        try:
            found = await self.redis.mget(keys)
        except REDIS_DOWN:
            CACHE_REQUESTS.labels(self.name, "error").inc(len(keys))
            return [None] * len(keys)
        out = [v if isinstance(v, bytes) and v != TOMBSTONE else None for v in found]
        hits = sum(v is not None for v in out)
        CACHE_REQUESTS.labels(self.name, "hit").inc(hits)
        CACHE_REQUESTS.labels(self.name, "miss").inc(len(out) - hits)
        return out

    async def put_many(self, payloads: Mapping[str, bytes]) -> None:
        """`put` of several keys in one round trip; each still fills only an empty key."""
        if not payloads:
            return
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for key, payload in payloads.items():
                    pipe.set(key, payload, ex=self.ttl, nx=True)
                await pipe.execute()
        except REDIS_DOWN:
            log.warning("%s cache write skipped: redis unavailable", self.name)

    async def put(self, key: str, payload: bytes) -> None:
        await self.put_many({key: payload})

    async def forget(self, keys: Iterable[str]) -> None:
        batch = list(dict.fromkeys(keys))
        try:
            for start in range(0, len(batch), 1000):
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key in batch[start : start + 1000]:
                        pipe.set(key, TOMBSTONE, ex=self.tombstone_seconds)
                    await pipe.execute()
        except REDIS_DOWN:
            log.warning("%s cache invalidation failed: redis unavailable; entries expire in %ss", self.name, self.ttl)
