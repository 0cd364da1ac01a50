"""Keyset cursors for the list endpoints that also keep upstream's offset/page parameters.

A cursor is the sort key and id of the last item shown (integers joined, base64url, no padding):
the next page starts strictly after it, so rows inserted meanwhile never shift or repeat items.
Anything that does not decode is 400 `validation failed`.

Such an endpoint answers the upstream body unchanged when no cursor is passed and adds
`next_cursor` to it in cursor mode; in both modes the cursor of the next page (if there is one)
goes out in the `X-Next-Cursor` header, from which the gateway builds its public `Link`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.responses import Response

from pinstack_kit.envelope import ok
from pinstack_kit.errors import BadRequest

NEXT_CURSOR_HEADER = "X-Next-Cursor"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def encode(*parts: int) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, parts)).encode()).decode().rstrip("=")


def decode(cursor: str, size: int) -> tuple[int, ...]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        parts = tuple(int(part) for part in text.split(":"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest() from exc
    if len(parts) != size or any(not 0 <= part < 2**63 for part in parts):
        raise BadRequest()
    return parts


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def moment(value: int) -> datetime:
    try:
        return EPOCH + timedelta(microseconds=value)
    except OverflowError as exc:
        raise BadRequest() from exc


def time_cursor(created_at: datetime, row_id: int) -> str:
    return encode(micros(created_at), row_id)


def decode_time_cursor(cursor: str) -> tuple[datetime, int]:
    stamp, row_id = decode(cursor, 2)
    return moment(stamp), row_id


def page_response(
    payload: Mapping[str, Any], next_cursor: str | None, *, cursor_mode: bool, status: int = 200
) -> Response:
    body = {**payload, "next_cursor": next_cursor} if cursor_mode else payload
    return ok(body, status=status, headers={NEXT_CURSOR_HEADER: next_cursor} if next_cursor else None)
