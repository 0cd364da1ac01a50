"""Ended sessions: access tokens stop working at the gateway when their session ends.

- a logout ends that session's access tokens: the auth service names the session it ended (the
  refresh-token family), which every access token of it carries as `sid`;
- a password change ends every access token of the user issued before it (the auth service
  stamps `iat` to the millisecond);
- an account deletion ends every token of the account.

The gateway sees these succeed and marks them in Redis, under its own key prefix:
`rev:s:<sid>` (the session ended) and `rev:u:<user id>` (tokens issued before this instant, in
ms, are void; a deleted account's instant lies in the far future). A mark lives as long as an
access token can (the auth service's `ACCESS_TOKEN_TTL_SECONDS`, which the gateway reads too,
plus the verification leeway): by then every token it voids has expired by itself.

Checking a token costs at most one round trip (an MGET of its user's and its session's marks),
and none while what this process last read for both is younger than `revocation_cache_seconds`
(0.5 s): a mark written through one gateway replica is enforced by every replica within that
time, by the one that wrote it at once. Marks only ever grow, so a mark once seen is kept.

Redis unreachable: fail closed. A token whose marks were not read within the last 0.5 s is
refused with 503 `external service unavailable`, never accepted on a guess: accepting would let
exactly the tokens revoked meanwhile (a stolen one after a password change) back in. Public
routes and sign-in keep working, and the outage is logged once, when it starts and ends. A mark
that could not be written is enforced by this process at once and written as soon as Redis
answers again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from prometheus_client import Counter, Gauge
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pinstack_gateway.config import Settings
from pinstack_gateway.limits import REDIS_UNAVAILABLE
from pinstack_kit.errors import ServiceUnavailable, Unauthorized
from pinstack_kit.jwt import LEEWAY_SECONDS

log = logging.getLogger("pinstack.gateway.sessions")

REFUSED = Counter("gateway_revoked_tokens_refused_total", "Access tokens refused because their session ended")
UNWRITTEN = Gauge("gateway_session_marks_unwritten", "Ended sessions enforced in process, not yet written to Redis")

ACCOUNT_DELETED_MS = 2**52  # "every token issued before" this: all of them, for good
MAX_SEEN = 100_000  # marks kept in process (the oldest read go first; Redis has them all)
RETRY_SECONDS = 1.0

# KEYS[1] mark; ARGV[1] value; ARGV[2] lifetime in ms. A mark never goes down.
_RAISE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local value = math.max(current, tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%d', value), 'PX', ARGV[2])
return value
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Revocations:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.prefix = f"{settings.key_prefix}rev:"
        self.lifetime_ms = (settings.access_token_ttl_seconds + LEEWAY_SECONDS) * 1000
        self.fresh_seconds = settings.revocation_cache_seconds
        self._seen: dict[str, tuple[float, int]] = {}  # mark → (monotonic time read, value)
        self._unwritten: dict[str, int] = {}
        self._raise = redis.register_script(_RAISE)
        self._redis_answers = True

    # -- checking ------------------------------------------------------------------------------

    async def check(self, claims: dict[str, Any]) -> None:
        """401 `unauthenticated` for a token of an ended session, 503 when that cannot be known."""
        marks = self._marks(claims)
        now = time.monotonic()
        seen = [self._seen.get(mark) for mark in marks]
        self._refuse_if_void(claims, marks, [entry[1] if entry else 0 for entry in seen])
        if all(entry is not None and now - entry[0] < self.fresh_seconds for entry in seen):
            return
        try:
            read = await self.redis.mget(marks)
        except (RedisError, OSError) as exc:
            self._unreachable(exc)
            raise ServiceUnavailable() from exc
        self._reachable()
        if self._unwritten:
            await self.write_unwritten()
        values = []
        for mark, raw, entry in zip(marks, read, seen, strict=True):
            value = max(int(raw or 0), entry[1] if entry else 0)
            self._remember(mark, now, value)
            values.append(value)
        self._refuse_if_void(claims, marks, values)

    def _marks(self, claims: dict[str, Any]) -> list[str]:
        marks = [f"{self.prefix}u:{int(claims['user_id'])}"]
        session = claims.get("sid")
        if isinstance(session, str) and session:
            marks.append(f"{self.prefix}s:{session}")
        return marks

    def _refuse_if_void(self, claims: dict[str, Any], marks: list[str], values: list[int]) -> None:
        user_mark, *session_mark = (
            max(value, self._unwritten.get(mark, 0)) for mark, value in zip(marks, values, strict=True)
        )
        issued_ms = round(float(claims["iat"]) * 1000)
        if issued_ms < user_mark or any(session_mark):
            REFUSED.inc()
            raise Unauthorized()

    def _remember(self, mark: str, now: float, value: int) -> None:
        self._seen.pop(mark, None)  # re-inserted last: the dict stays ordered by time read
        self._seen[mark] = (now, value)
        if len(self._seen) > MAX_SEEN:
            del self._seen[next(iter(self._seen))]

    # -- ending sessions -----------------------------------------------------------------------

    async def end_session(self, session_id: str) -> None:
        """After a logout: that session's access tokens."""
        await self._mark(f"{self.prefix}s:{session_id}", 1)

    async def end_tokens_of(self, user_id: int) -> None:
        """After a password change: every access token of the user issued until now."""
        await self._mark(f"{self.prefix}u:{user_id}", _now_ms())

    async def end_account(self, user_id: int) -> None:
        """After an account deletion: every token of the account."""
        await self._mark(f"{self.prefix}u:{user_id}", ACCOUNT_DELETED_MS)

    async def _mark(self, mark: str, value: int) -> None:
        entry = self._seen.get(mark)
        self._remember(mark, time.monotonic(), max(value, entry[1] if entry else 0))
        try:
            await self._raise(keys=[mark], args=[value, self.lifetime_ms])
        except (RedisError, OSError) as exc:
            self._unreachable(exc)
            self._unwritten[mark] = max(value, self._unwritten.get(mark, 0))
        else:
            self._reachable()
            if self._unwritten.get(mark, 0) <= value:
                self._unwritten.pop(mark, None)
        UNWRITTEN.set(len(self._unwritten))

    async def write_unwritten(self) -> None:
        """Retries the marks Redis did not take; they stay enforced in process until it does."""
        for mark, value in list(self._unwritten.items()):
            try:
                await self._raise(keys=[mark], args=[value, self.lifetime_ms])
            except (RedisError, OSError) as exc:
                self._unreachable(exc)
                return
            if self._unwritten.get(mark) == value:
                del self._unwritten[mark]
            UNWRITTEN.set(len(self._unwritten))
        self._reachable()

    async def keep_writing(self) -> None:
        """The lifespan's background task: unwritten marks are written within a second of Redis
        answering again, even when no authenticated request comes by to notice."""
        while True:
            await asyncio.sleep(RETRY_SECONDS)
            if self._unwritten:
                await self.write_unwritten()

    # -- Redis state, logged once per change -----------------------------------------------------

    def _unreachable(self, exc: BaseException) -> None:
        REDIS_UNAVAILABLE.labels("sessions").inc()
        if self._redis_answers:
            self._redis_answers = False
            log.error("redis unreachable: authenticated requests answer 503 until it is back (%s)", exc)

    def _reachable(self) -> None:
        if not self._redis_answers:
            self._redis_answers = True
            log.warning("redis reachable again: authenticated requests are served")
