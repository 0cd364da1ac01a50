"""Rate limits in Redis: per client IP on the auth routes, failed logins per account and per
client, and writes per user. Each check is one atomic round trip (a Lua script).

Fixed windows, not sliding ones, for the request limits: a counter with a TTL costs one key and
one script call per check, and the window starts at a client's first request, so clients are not
synchronised on wall-clock minute boundaries. The price is that a client can spend up to twice
the limit across one window edge, which is acceptable for what these limits are for (brute force
and runaway clients), where a sliding log would cost a sorted-set entry per request.

Failed logins slow down instead of locking out. They count against the account the login names
(its username, any capitalisation of it, and its e-mail are one account; a name no account has
counts as itself) and against the client. Past `RATE_LIMIT_LOGIN_FAILURES` failures of the account
(`RATE_LIMIT_LOGIN_FAILURES_PER_CLIENT` of the client, over every account it tries), each further attempt waits twice as
long as the one before: 1 s, 2 s, 4 s... up to a minute for the account, so that a burst of wrong
passwords from anyone keeps its owner out for at most that long, and up to 15 minutes for the
client that keeps guessing. An attempt during a wait is a 429 with `Retry-After`; an allowed
attempt claims its turn at once, so parallel guesses do not share it. A success clears the
account's failures (not the client's: signing into an account of one's own must not buy guesses
at others); failures are forgotten 15 minutes after the last one.

Redis being unreachable never refuses a request: the limit fails open, logs a warning and counts
`gateway_redis_unavailable_total`.

Requests in flight per client on the auth routes (`AUTH_IN_FLIGHT_PER_CLIENT`) are counted in the
process, not in Redis: a count that must go down when a request ends would leak in Redis whenever
a replica dies mid-request, and each replica guarding its own share is what matters here (the
hashing capacity behind it is shared by every client).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter as Tally
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any, NamedTuple

from fastapi import Request
from prometheus_client import Counter
from redis.asyncio import Redis
from redis.exceptions import RedisError

from pinstack_gateway.config import Settings, trusted_networks
from pinstack_kit.errors import TooManyRequests

log = logging.getLogger("pinstack.gateway.limits")

REDIS_UNAVAILABLE = Counter(
    "gateway_redis_unavailable_total", "Gateway features that failed open because Redis was unreachable", ["feature"]
)
RATE_LIMITED = Counter("gateway_rate_limited_total", "Requests refused with 429, by limit", ["limit"])

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MINUTE_MS = 60_000
LOGIN_WINDOW_MS = 15 * MINUTE_MS
FIRST_LOGIN_DELAY_MS = 1000
ACCOUNT_MAX_DELAY_MS = MINUTE_MS
CLIENT_MAX_DELAY_MS = LOGIN_WINDOW_MS

# KEYS[1] counter; ARGV[1] window in ms. Counts this request; returns {count, ms until the
# window ends}.
_WINDOW = """
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


# Failed logins. KEYS: failure records, hashes of n (failures) and turn (ms before which no
# attempt may start). ARGV: now (ms), the first delay (ms), how long a record is kept (ms), then
# per key its free failures and its longest delay (ms). A key's delay after n >= free failures is
# first * 2^(n - free), at most its longest.
_LOGIN_DELAY = """
local function delay(i, n)
  local free, longest = tonumber(ARGV[2 + 2 * i]), tonumber(ARGV[3 + 2 * i])
  if n < free then return nil end
  return math.min(tonumber(ARGV[2]) * 2 ^ (n - free), longest)
end
"""

# An attempt: returns {ms to wait (0: go ahead), then per key its failures}. Going ahead claims
# the turn, so that parallel attempts do not share it.
_LOGIN_TURN = (
    _LOGIN_DELAY
    + """
local now, wait, failures = tonumber(ARGV[1]), 0, {}
for i, key in ipairs(KEYS) do
  failures[i] = tonumber(redis.call('HGET', key, 'n') or '0')
  wait = math.max(wait, tonumber(redis.call('HGET', key, 'turn') or '0') - now)
end
if wait <= 0 then
  wait = 0
  for i, key in ipairs(KEYS) do
    local d = delay(i, failures[i])
    if d then redis.call('HSET', key, 'turn', string.format('%d', now + d)) end
  end
end
local answer = {wait}
for i = 1, #failures do answer[i + 1] = failures[i] end
return answer
"""
)

# A failed attempt: counts it; past the free failures the next attempt waits. Returns the
# failures per key.
_LOGIN_FAILED = (
    _LOGIN_DELAY
    + """
local now, failures = tonumber(ARGV[1]), {}
for i, key in ipairs(KEYS) do
  failures[i] = redis.call('HINCRBY', key, 'n', 1)
  local d = delay(i, failures[i])
  if d then
    local turn = math.max(tonumber(redis.call('HGET', key, 'turn') or '0'), now + d)
    redis.call('HSET', key, 'turn', string.format('%d', turn))
  end
  redis.call('PEXPIRE', key, ARGV[3])
end
return failures
"""
)


@dataclass(frozen=True)
class Quota:
    limit: int
    remaining: int  # negative once requests were refused: the header shows 0
    reset_seconds: int

    def headers(self) -> dict[str, str]:
        """The IETF draft's fields (draft-ietf-httpapi-ratelimit-headers)."""
        return {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(max(self.remaining, 0)),
            "RateLimit-Reset": str(self.reset_seconds),
        }


class LoginRecord(NamedTuple):
    key: str
    free: int  # failures before attempts wait
    longest_delay_ms: int


class LimitExceeded(TooManyRequests):
    def __init__(self, quota: Quota) -> None:
        super().__init__()
        self.quota = quota


class RateLimiter:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self.prefix = f"{settings.key_prefix}rl:"
        self.trusted = trusted_networks(settings.trusted_proxies)
        self._script = redis.register_script(_WINDOW)
        self._login_turn = redis.register_script(_LOGIN_TURN)
        self._login_failed = redis.register_script(_LOGIN_FAILED)
        self._in_flight: Tally[str] = Tally()

    async def _window(self, key: str, limit: int, window_ms: int, *, feature: str) -> Quota | None:
        """The quota after this request (None when Redis is unreachable: fail open)."""
        try:
            used, ttl = await self._script(keys=[self.prefix + key], args=[window_ms])
        except (RedisError, OSError) as exc:
            self._skipped(feature, exc)
            return None
        return Quota(limit, limit - int(used), math.ceil(max(int(ttl), 0) / 1000))

    def client_ip(self, request: Request) -> str:
        """The socket peer; behind a trusted proxy, the nearest X-Forwarded-For hop it did not add."""
        peer = request.client.host if request.client else ""
        if not self.trusted or not self._is_trusted(peer):
            return peer
        hops = [hop.strip() for hop in request.headers.get("x-forwarded-for", "").split(",") if hop.strip()]
        for hop in reversed(hops):
            if not self._is_trusted(hop):
                return hop
        return hops[0] if hops else peer

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    async def hit(self, request: Request, name: str, key: str, limit: int, window_ms: int = MINUTE_MS) -> None:
        """Count one request against `key`; 429 once more than `limit` were counted in the window."""
        if limit <= 0:
            return
        quota = await self._window(f"{name}:{key}", limit, window_ms, feature=name)
        if quota is None:
            return
        remember(request, quota)
        if quota.remaining < 0:  # the limit-th request itself is still allowed
            RATE_LIMITED.labels(name).inc()
            raise LimitExceeded(quota)

    def login_records(self, request: Request, account: str) -> list[LoginRecord] | None:
        """The failure records of the account and of the client; None when the limit is off."""
        free = self.settings.rate_limit_login_failures
        if free <= 0:
            return None
        records = [LoginRecord(f"{self.prefix}login:{account}", free, ACCOUNT_MAX_DELAY_MS)]
        if (per_client := self.settings.rate_limit_login_failures_per_client) > 0:
            key = f"{self.prefix}login:client:{self.client_ip(request)}"
            records.append(LoginRecord(key, per_client, CLIENT_MAX_DELAY_MS))
        return records

    async def check_login(self, request: Request, account: str) -> list[LoginRecord] | None:
        """429 while the account or the client waits its turn after failed logins; the records
        to pass to `login_failed` / `login_succeeded`. `account` names the account the login
        string names (see auth/endpoints.py)."""
        records = self.login_records(request, account)
        if records is None:
            return None
        try:
            wait, *failures = await self._login_turn(keys=[record.key for record in records], args=_login_args(records))
        except (RedisError, OSError) as exc:
            self._skipped("login", exc)
            return records
        self._remember_login(request, records, failures)
        if int(wait) > 0:
            RATE_LIMITED.labels("login").inc()
            quota = Quota(records[0].free, 0, math.ceil(int(wait) / 1000))
            request.state.quota = quota  # the wait, whichever record is fuller
            raise LimitExceeded(quota)
        return records

    async def login_failed(self, request: Request, records: list[LoginRecord]) -> None:
        try:
            failures = await self._login_failed(keys=[record.key for record in records], args=_login_args(records))
        except (RedisError, OSError) as exc:
            self._skipped("login", exc)
            return
        self._remember_login(request, records, failures)

    async def login_succeeded(self, records: list[LoginRecord]) -> None:
        """The owner is in: the account's failures are forgotten (the client's are kept)."""
        try:
            await self.redis.delete(records[0].key)
        except (RedisError, OSError) as exc:
            self._skipped("login", exc)

    def _remember_login(self, request: Request, records: list[LoginRecord], failures: list[Any]) -> None:
        """`RateLimit-*` of a login: failures left before attempts wait; forgotten after 15 minutes."""
        for record, used in zip(records, failures, strict=True):
            remember(request, Quota(record.free, record.free - int(used), LOGIN_WINDOW_MS // 1000))

    def enter(self, client: str, limit: int) -> None:
        """Count one more request of `client` in flight; 429 past `limit`."""
        if self._in_flight[client] >= limit:
            RATE_LIMITED.labels("auth_in_flight").inc()
            # Requests of this client finish within the gateway's timeout, most in milliseconds.
            raise LimitExceeded(Quota(limit, -1, 1))
        self._in_flight[client] += 1

    def leave(self, client: str) -> None:
        self._in_flight[client] -= 1
        if self._in_flight[client] <= 0:
            del self._in_flight[client]

    def _skipped(self, feature: str, exc: BaseException) -> None:
        REDIS_UNAVAILABLE.labels(feature).inc()
        log.warning("rate limit %s skipped: redis unavailable (%s)", feature, exc)


def _login_args(records: list[LoginRecord]) -> list[int]:
    args = [int(time.time() * 1000), FIRST_LOGIN_DELAY_MS, LOGIN_WINDOW_MS]
    for record in records:
        args += [record.free, record.longest_delay_ms]
    return args


def remember(request: Request, quota: Quota) -> None:
    """The tightest quota of the request goes out in its `RateLimit-*` headers (see headers.py)."""
    current: Quota | None = getattr(request.state, "quota", None)
    if current is None or quota.remaining <= current.remaining:
        request.state.quota = quota


def limiter(request: Request) -> RateLimiter:
    found: RateLimiter = request.app.state.limiter
    return found


async def limit_auth_ip(request: Request) -> AsyncIterator[None]:
    """A dependency of the auth routes: requests per client IP per minute, and in flight at once."""
    rl = limiter(request)
    client = rl.client_ip(request)
    await rl.hit(request, "auth", client, rl.settings.rate_limit_auth_per_minute)
    limit = rl.settings.auth_in_flight_limit
    if limit <= 0:
        yield
        return
    try:
        rl.enter(client, limit)
    except LimitExceeded as exc:
        remember(request, exc.quota)
        raise
    try:
        yield
    finally:
        rl.leave(client)


async def limit_writes(request: Request, user_id: int) -> None:
    if request.method in WRITE_METHODS:
        rl = limiter(request)
        await rl.hit(request, "writes", str(user_id), rl.settings.rate_limit_writes_per_minute)


def quota_headers(state: dict[str, Any], status: int) -> dict[str, str]:
    quota: Quota | None = state.get("quota")
    if quota is None:
        return {}
    headers = quota.headers()
    if status == 429:
        headers["Retry-After"] = str(max(quota.reset_seconds, 1))
    return headers
