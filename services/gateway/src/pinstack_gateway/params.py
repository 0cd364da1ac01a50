"""Path and query values parsed as the upstream gateway parsed them (contract §1.1: Go strconv
integers, RFC 3339 times), shared by the slices."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated

from fastapi import Query

from pinstack_contracts.limits import CURSOR_MAX, PAGE_SIZE_DEFAULT, PAGE_SIZE_MAX, PAGE_SIZE_MIN
from pinstack_kit.errors import AppError, BadRequest, InvalidInput
from pinstack_kit.validation import parse_int

# The list routes that kept upstream's offset/page parameters page by keyset once given a cursor.
CursorQuery = Annotated[
    str | None,
    Query(
        max_length=CURSOR_MAX,
        description="opaque cursor from the previous page's `Link` (or `next_cursor` in cursor mode); "
        "absent or empty: upstream's offset/page paging, unchanged. With a cursor the answer adds `next_cursor`.",
    ),
]

_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})")


def path_id(raw: str) -> int:
    """A path id that must be an int64 (else `invalid input`); its range is the caller's rule."""
    value = parse_int(raw)
    if value is None:
        raise InvalidInput()
    return value


def positive_id(raw: str, below_one: AppError | None = None) -> int:
    """Path ids: not an int64 → `invalid input`; below 1 → `below_one` (`validation failed`)."""
    value = path_id(raw)
    if value < 1:
        raise below_one or BadRequest()
    return value


def query_int(raw: str | None, *, bits: int = 64) -> int | None:
    """An optional integer query value: absent or empty → None, not an integer → `invalid input`."""
    if not raw:
        return None
    value = parse_int(raw, bits=bits)
    if value is None:
        raise InvalidInput()
    return value


def lenient_int(raw: str | None, default: int, low: int, high: int) -> int:
    """Pagination that silently falls back to `default` when the value is unusable."""
    value = parse_int(raw) if raw is not None else None
    return value if value is not None and low <= value <= high else default


def is_rfc3339(value: str) -> bool:
    """Go's `time.Parse(time.RFC3339, ...)`: date `T` time, optional fraction, `Z` or ±hh:mm,
    and a real moment (no month 13, no second 60)."""
    if not _RFC3339.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def page_size(raw: str | None, default: int = PAGE_SIZE_DEFAULT, high: int = PAGE_SIZE_MAX) -> int:
    """A page size: absent or empty → `default`, not an int64 → `invalid input`, outside
    PAGE_SIZE_MIN-`high` → `validation failed`."""
    value = query_int(raw)
    if value is None:
        return default
    if not PAGE_SIZE_MIN <= value <= high:
        raise BadRequest()
    return value
