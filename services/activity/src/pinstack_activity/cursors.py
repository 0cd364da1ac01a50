"""Opaque keyset cursors: integers joined and base64url-encoded. Clients pass them back as they
are; anything that does not decode is a 400."""

import base64
import binascii

from pinstack_activity.errors import InvalidInput


def encode(*parts: int) -> str:
    return base64.urlsafe_b64encode(":".join(map(str, parts)).encode()).decode().rstrip("=")


def decode(cursor: str, size: int) -> tuple[int, ...]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        parts = tuple(int(part) for part in text.split(":"))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput() from exc
    if len(parts) != size or any(not 0 <= part < 2**63 for part in parts):
        raise InvalidInput()
    return parts
