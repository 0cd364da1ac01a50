"""One error hierarchy, rendered by one handler in the contract's envelope.

Services raise `AppError` subclasses carrying the exact wire message; the gateway relays them.
Expected conditions are 4xx; anything unexpected is logged and becomes a 500 envelope.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from pinstack_kit.envelope import error_response

log = logging.getLogger("pinstack.errors")


class AppError(Exception):
    status: int = 500
    message: str = "internal server error"
    # True when the request's writes must commit although it answers with this error (for
    # example: refresh-token reuse revokes the token family, then answers 401).
    commit: bool = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        reason: str = "",
    ) -> None:
        if message is not None:
            self.message = message
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})  # sent with the answer (e.g. Retry-After)
        self.reason = reason  # for the log line of the answer, never on the wire
        super().__init__(self.message)


class BadRequest(AppError):
    status = 400
    message = "validation failed"


class InvalidInput(BadRequest):
    message = "invalid input"


class Unauthorized(AppError):
    status = 401
    message = "unauthenticated"


class Forbidden(AppError):
    status = 403
    message = "forbidden"


class NotFound(AppError):
    status = 404
    message = "not found"


class Conflict(AppError):
    status = 409
    message = "conflict"


class PayloadTooLarge(AppError):
    status = 413
    message = "request body too large"


class TooManyRequests(AppError):
    status = 429
    message = "too many requests"


class ServiceUnavailable(AppError):
    status = 503
    message = "external service unavailable"


def retry_after(seconds: float) -> dict[str, str]:
    """`Retry-After` in whole seconds, at least 1 (0 would invite an immediate retry storm)."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class Overloaded(ServiceUnavailable):
    """Shed at once rather than queued into a timeout: the caller may retry after `Retry-After`."""

    def __init__(self, reason: str, retry_after_seconds: float = 1.0) -> None:
        super().__init__(headers=retry_after(retry_after_seconds), reason=reason)


class ServiceTimeout(AppError):
    status = 504
    message = "external service timeout"


# Starlette's own 404/405 (unknown route, wrong method) still answer in the envelope.
_ROUTER_MESSAGES = {404: "not found", 405: "method not allowed"}


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AppError)
        if exc.reason:
            request.state.failure = exc.reason  # the access/failure log line says why (observability.py)
        return error_response(exc.status, exc.message, headers=exc.headers or None)

    async def http_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        message = _ROUTER_MESSAGES.get(exc.status_code) or str(exc.detail or "error").lower()
        return error_response(exc.status_code, message, headers=exc.headers)

    async def validation_error(_: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        return error_response(400, validation_message(exc.errors()))

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal server error")

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(Exception, unexpected)


# Pydantic error types that mean "the JSON did not decode into the declared types" (Go's
# json.Unmarshal failing) as opposed to "a value broke a rule" (validator failing).
DECODE_ERROR_TYPES = frozenset(
    {
        "int_type",
        "int_parsing",
        "int_from_float",
        "string_type",
        "bool_type",
        "bool_parsing",
        "float_type",
        "list_type",
        "dict_type",
        "model_type",
        "model_attributes_type",
        "json_invalid",
        "json_type",
        "int64_overflow",
    }
)


def validation_message(errors: object) -> str:
    """`invalid input` for decoding/type problems, `validation failed` for rule violations."""
    items = errors if isinstance(errors, list | tuple) else []
    if any(isinstance(e, dict) and e.get("type") in DECODE_ERROR_TYPES for e in items):
        return "invalid input"
    return "validation failed"
