"""The wire envelope: `{"status": code, "data": ...}` or `{"status": code, "message": "..."}`.

Responses are serialised once with orjson. Cached representations are stored as finished JSON
bytes and spliced into the envelope without being parsed again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.responses import Response

JSON = "application/json"


def _default(value: Any) -> Any:
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True)
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default)


def rfc3339(ts: datetime | None) -> str | None:
    """Users and posts on the wire: RFC 3339, second precision, UTC, `Z` suffix."""
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_sql(column: str) -> str:
    """`rfc3339` in SQL, for a timestamptz `column`."""
    return f"to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"


def rfc3339_nano(ts: datetime) -> str:
    """Notifications on the wire: Go's time.Time JSON, fractional seconds with zeros trimmed."""
    base = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    frac = f"{ts.microsecond:06d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def envelope_bytes(status: int, data_json: bytes | None) -> bytes:
    if data_json is None:
        return b'{"status":%d}' % status
    return b'{"status":%d,"data":%s}' % (status, data_json)


def ok(data: Any = None, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = envelope_bytes(status, None if data is None else dumps(data))
    return Response(body, status_code=status, media_type=JSON, headers=headers)


def ok_raw(data_json: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Success envelope around an already serialised payload (for example, from the cache)."""
    return Response(envelope_bytes(status, data_json), status_code=status, media_type=JSON, headers=headers)


def no_content() -> Response:
    return Response(status_code=204, media_type=JSON)


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    body = orjson.dumps({"status": status, "message": message})
    return Response(body, status_code=status, media_type=JSON, headers=headers)
