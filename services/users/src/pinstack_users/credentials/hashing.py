"""Password hashing with argon2id, off the event loop and within the machine's means.

A hash costs ~25 ms of one core, on purpose. The hashes run in a kit `Bulkhead`: as many at
once as the process has CPUs, a short queue behind them, and beyond that an immediate 503 with
`Retry-After` (kit overload.py), so a burst of registrations or logins is shed instead of piling
up into timeouts while every other route of the service slows down.

A hash takes a 19 MiB block, and glibc keeps freed memory: each hashing thread's arena kept its
block for good (`malloc_trim` cannot shrink a thread's arena), so the service stayed ~40-60 MB
larger after its first logins. So the process keeps one malloc arena, whose freed blocks stay
put while logins keep coming (fixed thresholds: a block is neither mapped afresh nor handed back
on every hash; mapping each one afresh cost 40 % of the hashing rate), and once hashing has been
idle for a second `malloc_trim` hands them back to the system. Measured on the 2-core dev
machine: the hashing rate and the event loop's allocation latency (p99) as with an arena per
thread, ~60 logins/s through the gateway before and after.
"""

import asyncio
import ctypes
import ctypes.util
import logging
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pinstack_kit.overload import Bulkhead
from pinstack_users.config import Settings

# RFC 9106 second recommended option (64 MiB, 3 passes) is too slow for 2-core dev boxes under
# load; 19 MiB / 2 passes is OWASP's argon2id baseline.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_bulkhead: Bulkhead | None = None
# mallopt's parameters (glibc's malloc.h) and their values: one arena; blocks up to 32 MiB from
# the heap and no trimming on free (the idle trim does it).
_MALLOPTS = {-8: 1, -3: 32 << 20, -1: 1 << 30}  # M_ARENA_MAX, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD
TRIM_AFTER_IDLE_SECONDS = 1.0

log = logging.getLogger("pinstack.users")
T = TypeVar("T")


def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, set up as the module doc says (threads started later share
    the main arena, the one `malloc_trim` can empty); None elsewhere (musl), where nothing is kept."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        if all(libc.mallopt(param, value) == 1 for param, value in _MALLOPTS.items()):
            return libc
    except (OSError, AttributeError):
        pass
    log.info("not glibc: hashing memory is left to the C library")
    return None


_libc = _glibc()
_trim: asyncio.TimerHandle | None = None


async def _run(job: Callable[..., T], *args: object) -> T:
    """`job` on the hashing bulkhead; the last one to finish schedules the trim."""
    global _trim
    if _trim is not None:
        _trim.cancel()
        _trim = None
    bulkhead = _hashing()
    try:
        return await bulkhead.run(job, *args)
    finally:
        if _libc is not None and bulkhead.idle:
            _trim = asyncio.get_running_loop().call_later(TRIM_AFTER_IDLE_SECONDS, _libc.malloc_trim, 0)


def configure(settings: Settings) -> None:
    """Size the hashing to the settings (create_app calls it; one bulkhead per process)."""
    global _bulkhead
    if _bulkhead is not None:
        _bulkhead.close()
    _bulkhead = Bulkhead(
        "password_hashing",
        limit=settings.hash_concurrency,
        queue=settings.hash_queue,
        max_wait=settings.password_hash_max_wait_seconds,
    )


def _hashing() -> Bulkhead:
    if _bulkhead is None:
        configure(Settings())
    assert _bulkhead is not None
    return _bulkhead


def admit() -> None:
    """503 at once when a hash would be refused now (before reading what it needs)."""
    _hashing().admit()


async def hash_password(password: str) -> str:
    return await _run(_hasher.hash, password)


def _check(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    return await _run(_check, password_hash, password)
