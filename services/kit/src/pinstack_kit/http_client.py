"""Calls between services: pooled connections, timeouts bounded by the request's deadline, a
bounded retry for idempotent calls (and for any call that never connected) and circuit breakers, so a dead backend costs a fast 503
instead of a hang or a bare 500.

Two kinds of breaker, so that a slow route does not cut off the healthy ones: one per upstream
counts connection failures (nothing listens: every route is down), one per route (the route of
the request being served, else the upstream path's first segment) counts timeouts and 5xx
answers. A backend that sheds load (503 or 429 with `Retry-After`) or reports a passed deadline
(504) answered at once and on purpose: neither opens a breaker. An open breaker answers 503 with
`Retry-After` until its next probe; every change of state is logged.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Gauge, Histogram

from pinstack_kit import deadline
from pinstack_kit.errors import AppError, ServiceTimeout, ServiceUnavailable, retry_after
from pinstack_kit.observability import current_route, request_id_var

log = logging.getLogger("pinstack.http_client")

UPSTREAM_REQUESTS = Counter("upstream_requests_total", "Calls to other services", ["upstream", "method", "outcome"])
UPSTREAM_LATENCY = Histogram(
    "upstream_request_duration_seconds",
    "Latency of calls to other services",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BREAKER_OPEN = Gauge("circuit_breaker_open", "1 while a circuit to an upstream is open", ["upstream", "route"])

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_CONNECTION = "*"  # the route label of an upstream's connection breaker
KEEPALIVE_SECONDS = 2.0  # an idle pooled connection is dropped after this (see ServiceClient._client)


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` s lets one probe through."""

    def __init__(self, name: str, route: str = _CONNECTION, threshold: int = 5, cooldown: float = 5.0) -> None:
        self.name = name
        self.route = route
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at >= self.cooldown:
            self.opened_at = time.monotonic()  # half-open: one probe per cooldown window
            log.info("circuit half-open: probing", extra={"fields": self._fields()})
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next probe may pass."""
        return self.cooldown - (time.monotonic() - (self.opened_at or 0.0))

    def success(self) -> None:
        if self.opened_at is not None:
            BREAKER_OPEN.labels(self.name, self.route).set(0)
            log.info("circuit closed", extra={"fields": self._fields()})
        self.failures = 0
        self.opened_at = None

    def failure(self, cause: str) -> None:
        self.failures += 1
        if self.failures >= self.threshold and self.opened_at is None:
            self.opened_at = time.monotonic()
            BREAKER_OPEN.labels(self.name, self.route).set(1)
            log.warning(
                "circuit opened", extra={"fields": {**self._fields(), "failures": self.failures, "cause": cause}}
            )

    def _fields(self) -> dict[str, Any]:
        return {"upstream": self.name, "route": self.route}


@dataclass(frozen=True)
class UpstreamResponse:
    status_code: int
    content: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # case-insensitive when from a service

    def json(self) -> Any:
        return orjson.loads(self.content)


class ServiceClient:
    """aiohttp underneath: on the gateway's hot path its pool costs a fraction of httpx's."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        timeout: float = 5.0,
        connect_timeout: float = 1.0,
        retries: int = 1,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.timeout = timeout
        self.breaker = CircuitBreaker(name)  # connection failures: every route
        self.route_breakers: dict[str, CircuitBreaker] = {}
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop. A pooled connection must never be one the
        # server is closing: uvicorn closes idle ones after 5 s, and a draining instance closes
        # them 5 s after SIGTERM (every answer in between says `Connection: close`). At 4 s the
        # margin was 1 s, and a busy event loop that released a connection late lost it: a POST
        # on it failed with ServerDisconnectedError, which must not be retried (seen as a single
        # 503 in a rotation's rollout on the 2-core node). At 2 s the margin is 3 s.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=KEEPALIVE_SECONDS, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=lambda v: orjson.dumps(v).decode()
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def route_breaker(self, method: str, path: str) -> CircuitBreaker:
        """The breaker of the route being served (its template: bounded), else of the upstream
        path's first segment (a worker's call)."""
        route = current_route() or "/" + path.lstrip("/").split("/", 1)[0].split("?", 1)[0]
        key = f"{method} {route}"
        found = self.route_breakers.get(key)
        if found is None:
            found = self.route_breakers[key] = CircuitBreaker(self.name, key)
        return found

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> UpstreamResponse:
        """One call; transport failures become 503/504 `AppError`s, HTTP errors are returned."""
        route = self.route_breaker(method, path)
        for breaker in (self.breaker, route):
            if not breaker.allow():
                UPSTREAM_REQUESTS.labels(self.name, method, "circuit_open").inc()
                raise ServiceUnavailable(
                    headers=retry_after(breaker.retry_after()), reason=f"circuit to {self.name} {breaker.route} open"
                )
        send_headers = {"x-request-id": request_id_var.get(), "content-type": "application/json"}
        if headers:
            send_headers.update(headers)
        content = orjson.dumps(json) if json is not None else None
        query = {k: str(v) for k, v in params.items()} if params else None
        attempts = 1 + self.retries
        error: AppError
        last_exc: BaseException
        for attempt in range(attempts):
            again = method in _IDEMPOTENT
            timeout, budget = deadline.outgoing(self.timeout)  # 504 at once when nothing is left
            start = time.perf_counter()
            try:
                async with self._client().request(
                    method,
                    self.base_url + path,
                    data=content,
                    params=query,
                    headers={**send_headers, **budget},
                    timeout=aiohttp.ClientTimeout(total=timeout, sock_connect=self._timeout.sock_connect),
                ) as raw:
                    response = UpstreamResponse(raw.status, await raw.read(), raw.headers)
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                outcome, last_exc = "timeout", exc
                error = ServiceTimeout(reason=f"{self.name} {route.route} timed out after {timeout:.2f}s")
                route.failure("timeout")
            except (aiohttp.ClientError, OSError) as exc:
                outcome, last_exc = "unavailable", exc
                error = ServiceUnavailable(reason=f"{self.name} {route.route} unreachable: {type(exc).__name__}")
                self.breaker.failure(type(exc).__name__)
                # never connected: nothing was sent, so any method may go again (a pod that just
                # stopped listening while the Service still sent connections its way)
                again = again or isinstance(exc, aiohttp.ClientConnectorError)
            else:
                UPSTREAM_LATENCY.labels(self.name).observe(time.perf_counter() - start)
                self.breaker.success()  # it answered
                status = response.status_code
                if status < 500:
                    route.success()
                elif not (status == 504 or (status == 503 and "retry-after" in response.headers)):
                    route.failure(str(status))  # not a shed answer nor a passed deadline
                UPSTREAM_REQUESTS.labels(self.name, method, str(status)).inc()
                return response
            UPSTREAM_REQUESTS.labels(self.name, method, outcome).inc()
            if attempt + 1 == attempts or not again or not (self.breaker.allow() and route.allow()):
                raise error from last_exc
        raise AssertionError("unreachable")

    async def call(self, method: str, path: str, **kwargs: Any) -> UpstreamResponse:
        """Like `request`, but an error answer is raised as the `AppError` it carries."""
        response = await self.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    async def find(self, path: str) -> Any | None:
        """GET one resource's envelope `data`; None when the service answers 404.

        The projection fallback of every service ("not seen in the events yet: ask its owner once").
        """
        response = await self.request("GET", path)
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            raise error_from_response(response)
        return response.json()["data"]


def error_from_response(response: UpstreamResponse) -> AppError:
    """4xx keep the service's contract message; 5xx become `external service error`. A refusal's
    `Retry-After` goes on with it (so the gateway passes a shed answer on as it came)."""
    status = response.status_code
    kept = {"Retry-After": response.headers["retry-after"]} if "retry-after" in response.headers else None
    reason = f"answered {status}: {_message(response)}" if status >= 500 else ""
    if status >= 500:
        if status == 503:
            return ServiceUnavailable(headers=kept, reason=reason)
        if status == 504:
            return ServiceTimeout(reason=reason)
        return AppError("external service error", status=500, reason=reason)
    return AppError(_message(response) or "external service error", status=status, headers=kept)


def _message(response: UpstreamResponse) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""
