"""Calls between services: pooled connections, timeouts, a bounded retry for idempotent calls
and a circuit breaker, so a dead backend costs a fast 503 instead of a hang or a bare 500.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from prometheus_client import Counter, Gauge, Histogram

from pinstack_kit.errors import AppError, ServiceTimeout, ServiceUnavailable
from pinstack_kit.observability import request_id_var

UPSTREAM_REQUESTS = Counter("upstream_requests_total", "Calls to other services", ["upstream", "method", "outcome"])
UPSTREAM_LATENCY = Histogram(
    "upstream_request_duration_seconds",
    "Latency of calls to other services",
    ["upstream"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BREAKER_OPEN = Gauge("circuit_breaker_open", "1 while the circuit to an upstream is open", ["upstream"])

_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


class CircuitBreaker:
    """Opens after `threshold` consecutive failures; after `cooldown` s lets one probe through."""

    def __init__(self, name: str, threshold: int = 5, cooldown: float = 5.0) -> None:
        self.name = name
        self.threshold = threshold
        self.cooldown = cooldown
        self.failures = 0
        self.opened_at: float | None = None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if time.monotonic() - self.opened_at >= self.cooldown:
            self.opened_at = time.monotonic()  # half-open: one probe per cooldown window
            return True
        return False

    def success(self) -> None:
        if self.opened_at is not None:
            BREAKER_OPEN.labels(self.name).set(0)
        self.failures = 0
        self.opened_at = None

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold and self.opened_at is None:
            self.opened_at = time.monotonic()
            BREAKER_OPEN.labels(self.name).set(1)


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
        self.breaker = CircuitBreaker(name)
        self._timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created lazily inside the running loop; keep-alive shorter than uvicorn's 5 s so a
        # pooled connection is never one the server is closing.
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=200, keepalive_timeout=4.0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, json_serialize=lambda v: orjson.dumps(v).decode()
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

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
        if not self.breaker.allow():
            UPSTREAM_REQUESTS.labels(self.name, method, "circuit_open").inc()
            raise ServiceUnavailable()
        send_headers = {"x-request-id": request_id_var.get(), "content-type": "application/json"}
        if headers:
            send_headers.update(headers)
        content = orjson.dumps(json) if json is not None else None
        query = {k: str(v) for k, v in params.items()} if params else None
        attempts = 1 + (self.retries if method in _IDEMPOTENT else 0)
        error: AppError
        last_exc: BaseException
        for attempt in range(attempts):
            start = time.perf_counter()
            try:
                async with self._client().request(
                    method, self.base_url + path, data=content, params=query, headers=send_headers
                ) as raw:
                    response = UpstreamResponse(raw.status, await raw.read(), raw.headers)
            except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
                outcome, error, last_exc = "timeout", ServiceTimeout(), exc
            except (aiohttp.ClientError, OSError) as exc:
                outcome, error, last_exc = "unavailable", ServiceUnavailable(), exc
            else:
                UPSTREAM_LATENCY.labels(self.name).observe(time.perf_counter() - start)
                if response.status_code >= 500:
                    self.breaker.failure()
                else:
                    self.breaker.success()
                UPSTREAM_REQUESTS.labels(self.name, method, str(response.status_code)).inc()
                return response
            self.breaker.failure()
            UPSTREAM_REQUESTS.labels(self.name, method, outcome).inc()
            if attempt + 1 == attempts or not self.breaker.allow():
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
    """4xx keep the service's contract message; 5xx become `external service error`."""
    if response.status_code >= 500:
        if response.status_code == 503:
            return ServiceUnavailable()
        if response.status_code == 504:
            return ServiceTimeout()
        return AppError("external service error", status=500)
    return AppError(_message(response) or "external service error", status=response.status_code)


def _message(response: UpstreamResponse) -> str:
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return message if isinstance(message, str) else ""
