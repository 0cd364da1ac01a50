"""Validation rules with the semantics the upstream contract documents (Go's validator and
strconv), shared by the gateway and the services so both sides agree on what is valid."""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from urllib.parse import unquote, urlsplit

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


def is_link_url(value: str) -> bool:
    """A URL every client may be handed and fetch (an avatar, a post's media): a valid `url` (Go's
    rule, above) over http or https, without credentials, whose host is not this machine or a
    private network. Hosts are judged by their text, never resolved (no DNS lookups while
    handling a request): IP literals in every spelling a browser accepts (`127.1`, `0x7f.1`,
    `2130706433`, `[::ffff:127.0.0.1]`) must be globally reachable addresses; names must have a
    dot and not be `localhost` or under a suffix that only names local hosts."""
    if not is_url(value):
        return False
    parts = urlsplit(value)
    if parts.scheme.lower() not in _LINK_SCHEMES or parts.username is not None or parts.password is not None:
        return False
    if parts.netloc.rpartition("@")[2].startswith("["):
        try:
            return _public(ip_address(parts.hostname or ""))
        except ValueError:  # with a zone id, or not an address at all
            return False
    host = _host_name(parts.hostname or "")
    if host is None:
        return False
    if _ends_in_a_number(host):
        address = _whatwg_ipv4(host)
        return address is not None and _public(address)
    return "." in host and not any(host == local or host.endswith("." + local) for local in _LOCAL_NAMES)


_LINK_SCHEMES = frozenset({"http", "https"})
# Names that only ever mean this machine or the local network: RFC 6761 (localhost), RFC 6762
# (local), RFC 8375 (home.arpa), ICANN's private-use `internal`, and the usual LAN defaults.
_LOCAL_NAMES = ("localhost", "localdomain", "local", "internal", "lan", "home.arpa")
_HOST = re.compile(r"[a-z0-9_\-]+(?:\.[a-z0-9_\-]+)*")
_NAT64 = ip_network("64:ff9b::/96")


def _host_name(raw: str) -> str | None:
    """The host as a browser reaches it: percent-decoded, IDNA-mapped (full-width letters and
    dots fold to ASCII), lower case, without the root's trailing dot; None when it is not a
    valid name (a backslash, an empty label...)."""
    try:
        host = unquote(raw, errors="strict").encode("idna").decode("ascii").lower()
    except UnicodeError:
        return None
    host = host.removesuffix(".")
    return host if _HOST.fullmatch(host) else None


def _ends_in_a_number(host: str) -> bool:
    last = host.rpartition(".")[2]
    return last.isdigit() or bool(re.fullmatch(r"0x[0-9a-f]*", last))


def _whatwg_ipv4(host: str) -> IPv4Address | None:
    """The WHATWG URL standard's IPv4 parser: 1-4 parts, each decimal, octal (leading 0) or hex
    (0x), the last filling the remaining bytes; None where a browser refuses the URL."""
    numbers = []
    for part in host.split("."):
        if part.startswith("0x"):
            digits, base = part[2:] or "0", 16
        elif len(part) > 1 and part.startswith("0"):
            digits, base = part[1:], 8
        else:
            digits, base = part, 10
        try:
            numbers.append(int(digits, base))
        except ValueError:
            return None
    if len(numbers) > 4 or any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        return None
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return IPv4Address(value)


def _public(address: IPv4Address | IPv6Address) -> bool:
    """Globally reachable: not loopback, private, link-local, shared, reserved, documentation or
    multicast; an IPv6 address that embeds an IPv4 one is judged by that one."""
    if isinstance(address, IPv6Address):
        teredo = address.teredo
        embedded = address.ipv4_mapped or address.sixtofour or (teredo[1] if teredo else None)
        if embedded is None and address in _NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return _public(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not address.is_multicast


def check_email(value: str) -> str:
    if not is_email(value):
        raise ValueError("invalid email")
    return value


def check_url(value: str) -> str:
    """The one rule of every field that holds a URL (avatars, media), wherever it is checked."""
    if not is_link_url(value):
        raise ValueError("invalid url")
    return value
