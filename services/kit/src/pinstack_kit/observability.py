"""JSON logs carrying the request id, and RED metrics labelled by route template.

`RequestMiddleware` is the one per-request layer of every service, plain ASGI (no
BaseHTTPMiddleware) because it sits on every hot path: the request id, the request's deadline
(deadline.py), the RED metrics, the log lines and `Connection: close` while draining, which were
three layers of their own. It writes one log line per failed request (a 5xx, a timeout, a shed or
rate-limited 429: WARNING, with the reason the error carried) and, with ACCESS_LOG on, one INFO
line per request.

Metrics stay cheap to record and to scrape: the labels are bounded (route templates, the methods a
route serves, everything else `other`), the latency histogram has ten buckets, no status label
and only the requests a route served (what the router refused, 404 and 405, is counted only), `_created` series are off, and `/metrics` is rendered in a worker thread (scrapes that
arrive meanwhile share it), so a scrape never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
import uuid
from typing import Any

import orjson
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinstack_kit import deadline

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")
_scope_var: contextvars.ContextVar[Scope | None] = contextvars.ContextVar("request_scope", default=None)
log = logging.getLogger("pinstack.access")

# A `<name>_created` sample per labelled child doubled the lines of a scrape; no dashboard or
# alert reads them (rate() and increase() handle counter resets without).
disable_created_metrics()

HTTP_REQUESTS = Counter("http_requests_total", "HTTP requests served, by route template", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency, by route template",
    ["method", "route"],
    # The alert's threshold (1 s) is a bound, so `p99 > 1s` is exact; p50/p99 panels interpolate.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
HTTP_IN_FLIGHT = Gauge("http_requests_in_flight", "HTTP requests being served")
CACHE_REQUESTS = Counter("cache_requests_total", "Cache lookups", ["cache", "result"])
SERVICE_INFO = Gauge("pinstack_service_info", "Constant 1, labelled with the service name", ["service"])
UNMATCHED = "unmatched"
OTHER_METHOD = "other"
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

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


class _Series:
    """The labelled children of the HTTP metrics, looked up once per label set: `labels()`
    validates and locks on every call, a dict lookup is all a request needs."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, str, int], Any] = {}
        self.histograms: dict[tuple[str, str], Any] = {}

    def record(self, method: str, route: str, status: int, elapsed: float) -> None:
        counter = self.counters.get((method, route, status))
        if counter is None:
            counter = self.counters[(method, route, status)] = HTTP_REQUESTS.labels(method, route, str(status))
        counter.inc()
        if method == OTHER_METHOD or route == UNMATCHED:
            return  # refused by the router (404, 405): counted, but its latency says nothing
        histogram = self.histograms.get((method, route))
        if histogram is None:
            histogram = self.histograms[(method, route)] = HTTP_LATENCY.labels(method, route)
        histogram.observe(elapsed)


_SERIES = _Series()
_in_flight = 0
HTTP_IN_FLIGHT.set_function(lambda: _in_flight)


def _labels(scope: Scope) -> tuple[str, str]:
    """Method and route of the metrics and log lines: the route template, and the method only
    when that route serves it (a 405 or an invented method is `other`), so no client can add
    series."""
    method = scope["method"]
    template = _template(scope)
    if template == UNMATCHED:
        return (method if method in _KNOWN_METHODS else OTHER_METHOD), template
    methods = getattr(scope["route"], "methods", None)
    if methods is not None and method not in methods:
        return OTHER_METHOD, template
    return method, template


class RequestMiddleware:
    """Every service's one per-request layer (see the module docstring).

    `deadline_seconds`: the longest a request may take here (the gateway's budget), else only what
    the caller sent in X-Request-Timeout-Ms. `state`: the app state whose `draining` flag adds
    `Connection: close` to every answer, so keep-alive clients reconnect (to another instance)
    before this one closes its idle connections.
    """

    def __init__(
        self, app: ASGIApp, access_log: bool = False, deadline_seconds: float | None = None, state: Any = None
    ) -> None:
        self.app = app
        self.access_log = access_log
        self.deadline_seconds = deadline_seconds
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        global _in_flight
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id_var.set(request_id)
        scope_token = _scope_var.set(scope)
        deadline_token = deadline.enter(scope["headers"], self.deadline_seconds)
        status = 500
        start = time.perf_counter()
        state = self.state

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
                if state is not None and getattr(state, "draining", False):
                    headers.append((b"connection", b"close"))
                message["headers"] = headers
            await send(message)

        _in_flight += 1
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            _in_flight -= 1
            deadline.leave(deadline_token)
            elapsed = time.perf_counter() - start
            method, template = _labels(scope)
            _SERIES.record(method, template, status, elapsed)
            failed = status >= 500 or status == 429
            if failed or self.access_log:
                fields = {
                    "method": scope["method"],
                    "route": _template(scope),
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                }
                if failure := scope.get("state", {}).get("failure"):
                    fields["reason"] = failure
                line = "%s %s answered %d"
                if failed:
                    log.warning(line, fields["method"], fields["route"], status, extra={"fields": fields})
                else:
                    log.info(line, fields["method"], fields["route"], status, extra={"fields": fields})
            _scope_var.reset(scope_token)
            request_id_var.reset(token)


def _template(scope: Scope) -> str:
    return getattr(scope.get("route"), "path", None) or UNMATCHED


def _incoming_request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            candidate = value.decode("latin-1")[:64]
            # Only echo ids that cannot smuggle anything into logs or headers.
            if candidate and all(c.isalnum() or c in "-_." for c in candidate):
                return candidate
    return ""


class _Rendering:
    """The exposition text, rendered in a worker thread: generate_latest walks every series in
    Python, and on the event loop a large registry held every request behind it. Scrapes that
    arrive while a rendering runs (several Prometheus replicas, a person's curl) share it."""

    def __init__(self) -> None:
        self.pending: asyncio.Future[bytes] | None = None

    async def latest(self) -> bytes:
        if self.pending is None or self.pending.get_loop() is not asyncio.get_running_loop():
            self.pending = asyncio.ensure_future(asyncio.to_thread(generate_latest))
            self.pending.add_done_callback(self._done)
        return await asyncio.shield(self.pending)

    def _done(self, finished: asyncio.Future[bytes]) -> None:
        if self.pending is finished:
            self.pending = None


_RENDERING = _Rendering()


async def metrics_endpoint(_: Request) -> Response:
    return Response(await _RENDERING.latest(), media_type=CONTENT_TYPE_LATEST)
