"""Rate limits in Redis: per client IP on the auth routes, per login name on failed logins, per
user on writes. Each check is one atomic round trip (a Lua script).

Fixed windows, not sliding ones: a counter with a TTL costs one key and one script call per
check, and the window starts at a client's first request, so clients are not synchronised on
wall-clock minute boundaries. The price is that a client can spend up to twice the limit across
one window edge, which is acceptable for what these limits are for (brute force and runaway
clients), where a sliding log would cost a sorted-set entry per request.

Redis being unreachable never refuses a request: the limit fails open, logs a warning and counts
`gateway_redis_unavailable_total`.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from ipaddress import ip_address
from typing import Any

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

# KEYS[1] counter; ARGV[1] window in ms; ARGV[2] 1 to count this request, 0 to only read.
# Returns {count, milliseconds until the window ends}.
_WINDOW = """
local n
if ARGV[2] == '1' then
  n = redis.call('INCR', KEYS[1])
else
  n = tonumber(redis.call('GET', KEYS[1]) or '0')
end
local ttl = redis.call('PTTL', KEYS[1])
if n > 0 and ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
"""


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

    async def _window(self, key: str, limit: int, window_ms: int, *, count: bool, feature: str) -> Quota | None:
        """The quota after this request (None when Redis is unreachable: fail open)."""
        try:
            used, ttl = await self._script(keys=[self.prefix + key], args=[window_ms, 1 if count else 0])
        except (RedisError, OSError) as exc:
            REDIS_UNAVAILABLE.labels(feature).inc()
            log.warning("rate limit %s skipped: redis unavailable (%s)", feature, exc)
            return None
        reset = math.ceil(max(int(ttl), 0) / 1000) if int(used) > 0 else window_ms // 1000
        return Quota(limit, limit - int(used), reset)

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
        quota = await self._window(f"{name}:{key}", limit, window_ms, count=True, feature=name)
        if quota is None:
            return
        remember(request, quota)
        if quota.remaining < 0:  # the limit-th request itself is still allowed
            RATE_LIMITED.labels(name).inc()
            raise LimitExceeded(quota)

    async def check_login(self, request: Request, login: str) -> str | None:
        """429 while the login name has too many recent failures; the key for `login_failed`."""
        limit = self.settings.rate_limit_login_failures
        if limit <= 0:
            return None
        key = "login:" + hashlib.sha256(login.lower().encode()).hexdigest()
        quota = await self._window(key, limit, LOGIN_WINDOW_MS, count=False, feature="login")
        if quota is None:
            return key
        remember(request, quota)
        if quota.remaining <= 0:
            RATE_LIMITED.labels("login").inc()
            raise LimitExceeded(quota)
        return key

    async def login_failed(self, request: Request, key: str) -> None:
        limit = self.settings.rate_limit_login_failures
        quota = await self._window(key, limit, LOGIN_WINDOW_MS, count=True, feature="login")
        if quota is not None:
            remember(request, quota)


def remember(request: Request, quota: Quota) -> None:
    """The tightest quota of the request goes out in its `RateLimit-*` headers (see headers.py)."""
    current: Quota | None = getattr(request.state, "quota", None)
    if current is None or quota.remaining <= current.remaining:
        request.state.quota = quota


def limiter(request: Request) -> RateLimiter:
    found: RateLimiter = request.app.state.limiter
    return found


async def limit_auth_ip(request: Request) -> None:
    """A dependency of the auth routes: requests per client IP per minute."""
    rl = limiter(request)
    await rl.hit(request, "auth", rl.client_ip(request), rl.settings.rate_limit_auth_per_minute)


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
