"""Validation rules with the semantics the upstream contract documents (Go's validator and
strconv), shared by the gateway and the services so both sides agree on what is valid."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_INT = re.compile(r"[+-]?[0-9]+")

_U = "\u00a0-\ud7ff\uf900-\ufdcf\ufdf0-\uffef"  # the non-ASCII letters the validator accepts
_ATEXT = rf"[A-Za-z0-9!#$%&'*+\-/=?^_`{{|}}~{_U}]"
_LOCAL = rf"(?:{_ATEXT}+(?:\.{_ATEXT}+)*|\"(?:[^\"\\\r\n]|\\.)*\")"
_ALNUM = rf"[A-Za-z0-9{_U}]"
_ALPHA = rf"[A-Za-z{_U}]"
_LABEL = rf"(?:{_ALNUM}|{_ALNUM}[A-Za-z0-9\-.~{_U}]*{_ALNUM})"
_TLD = rf"(?:{_ALPHA}|{_ALPHA}[A-Za-z0-9\-.~{_U}]*{_ALPHA})"
_EMAIL = re.compile(rf"{_LOCAL}@(?:{_LABEL}\.)+{_TLD}\.?")

# The stricter "looks like an email" pattern the contract uses for /users/email/{email} and for
# deciding whether a login is an email or a username.
SIMPLE_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}")

_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
_FORBIDDEN_IN_URL = re.compile(r"[\x00-\x20\x7f]")


def parse_int(value: str, *, bits: int = 64) -> int | None:
    """Go strconv.ParseInt: optional sign, ASCII digits only, must fit; None when it does not."""
    if not _INT.fullmatch(value):
        return None
    number = int(value)
    low, high = (INT32_MIN, INT32_MAX) if bits == 32 else (INT64_MIN, INT64_MAX)
    return number if low <= number <= high else None


def is_email(value: str) -> bool:
    return bool(_EMAIL.fullmatch(value))


def is_url(value: str) -> bool:
    """Scheme plus a host, a fragment or an opaque part (`https://x.y/a`, `mailto:a@b`)."""
    lowered = value.lower()
    if not lowered or _FORBIDDEN_IN_URL.search(lowered):
        return False
    try:
        parts = urlsplit(lowered)
        parts.port  # noqa: B018 - raises ValueError on an invalid port
    except ValueError:
        return False
    if not parts.scheme or not _SCHEME.fullmatch(parts.scheme):
        return False
    opaque = not lowered[len(parts.scheme) + 1 :].startswith("/") and bool(parts.path)
    return bool(parts.netloc or parts.fragment or opaque)


def check_email(value: str) -> str:
    if not is_email(value):
        raise ValueError("invalid email")
    return value


def check_url(value: str) -> str:
    if not is_url(value):
        raise ValueError("invalid url")
    return value
