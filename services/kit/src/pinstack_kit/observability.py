"""JSON logs carrying the request id, and RED metrics labelled by route template.

The middleware is plain ASGI (no BaseHTTPMiddleware) because it sits on every hot path. It writes
one log line per failed request (a 5xx, a timeout, a shed or rate-limited 429: WARNING, with the
reason the error carried) and, with ACCESS_LOG on, one INFO line per request.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import time
import uuid
from typing import Any

import orjson
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_scope_var: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("request_scope", default=None)
log = logging.getLogger("pinstack.access")

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served, by route template", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency, by route template",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served")
CACHE_REQUESTS = Counter("cache_requests_total", "Cache lookups", ["cache", "result"])
SERVICE_INFO = Gauge("pinstack_service_info", "Constant 1, labelled with the service name", ["service"])

# Values never logged, whatever logger they reach (passwords, tokens, secrets).
_REDACTED_KEYS = ("password", "token", "secret", "authorization", "private_key")


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in record.__dict__.get("fields", {}).items():
            entry[key] = "[redacted]" if any(k in key.lower() for k in _REDACTED_KEYS) else value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


class RepeatFilter(logging.Filter):
    """Lets a message of the `libraries` (by logger and format string) through once per `window`
    seconds, then says how often it was held back: a library that logs every reconnect attempt
    to a broker that is down (aiokafka: several lines a second per client) writes a line a minute
    instead. Our own loops log outages by state (`OutageLog`)."""

    def __init__(self, libraries: tuple[str, ...], window: float = 60.0) -> None:
        super().__init__()
        self.libraries = tuple(f"{name}." for name in libraries)
        self.names = libraries
        self.window = window
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name not in self.names and not record.name.startswith(self.libraries):
            return True
        key = (record.name, str(record.msg))
        now = time.monotonic()
        last, held = self._seen.get(key, (-self.window, 0))
        if now - last < self.window:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) > 1000:  # messages with the values in their format string: start over
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg = f"{record.msg} (and {held} more like it in the last {now - last:.0f}s)"
        return True


class OutageLog:
    """A dependency's outage as two lines, whatever the number of retries in between: WARNING
    when it goes down, INFO when it is back (with how long and how many retries it took)."""

    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.logger = logger
        self.what = what
        self.down_since: float | None = None
        self.retries = 0

    def down(self, exc: BaseException) -> None:
        if self.down_since is None:
            self.down_since = time.monotonic()
            self.logger.warning(
                "%s unavailable (%s: %s); retrying until it is back", self.what, type(exc).__name__, exc
            )
        else:
            self.retries += 1
            self.logger.debug("%s still unavailable (%s)", self.what, exc)

    def up(self) -> None:
        if self.down_since is not None:
            self.logger.info(
                "%s available again after %.1fs (%d retries)",
                self.what,
                time.monotonic() - self.down_since,
                self.retries,
            )
            self.down_since, self.retries = None, 0


def configure_logging(service: str, level: str = "INFO") -> None:
    noisy = ("aiokafka", "kafka", "aiohttp")
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(RepeatFilter(noisy))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in noisy:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    SERVICE_INFO.labels(service).set(1)


def current_route() -> str:
    """The route template of the request being served ("" outside a request or before routing)."""
    scope = _scope_var.get()
    route = scope.get("route") if scope is not None else None
    return str(getattr(route, "path", "") or "")


class ObservabilityMiddleware:
    """Request id in, request id out; one counter and one histogram sample per request; the log
    lines of the module docstring."""

    def __init__(self, app: ASGIApp, access_log: bool = False) -> None:
        self.app = app
        self.access_log = access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope_token = _scope_var.set(scope)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            HTTP_IN_FLIGHT.dec()
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            elapsed = time.perf_counter() - start
            HTTP_REQUESTS.labels(method, template, str(status)).inc()
            HTTP_LATENCY.labels(method, template).observe(elapsed)
            failed = status >= 500 or status == 429
            if failed or self.access_log:
                fields = {"method": method, "route": template, "status": status, "ms": round(elapsed * 1000, 1)}
                if failure := scope.get("state", {}).get("failure"):
                    fields["reason"] = failure
                if failed:
                    log.warning("%s %s answered %d", method, template, status, extra={"fields": fields})
                else:
                    log.info("%s %s answered %d", method, template, status, extra={"fields": fields})
            _scope_var.reset(scope_token)
            request_id_var.reset(token)


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")[:64]
            # Only echo ids that cannot smuggle anything into logs or headers.
            if candidate and all(c.isalnum() or c in "-_." for c in candidate):
                return candidate
    return ""


async def metrics_endpoint(_: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
