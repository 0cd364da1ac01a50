"""Password hashing with argon2id, off the event loop and within the machine's means.

A hash costs ~25 ms of one core, on purpose. The hashes run in a kit `Bulkhead`: as many at
once as the process has CPUs, a short queue behind them, and beyond that an immediate 503 with
`Retry-After` (kit overload.py), so a burst of registrations or logins is shed instead of piling
up into timeouts while every other route of the service slows down.

Each hashing thread keeps its hash's 19 MiB after the first one (glibc keeps the freed block in
the thread's arena), so the service is ~40 MB larger after its first logins, and stays so. Handing
the block back after every hash (a fixed mmap threshold) cost 40 % of the hashing rate on the
2-core dev machine (88 -> 54 hashes/s on two threads): the memory is the cheaper price.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pinstack_kit.overload import Bulkhead
from pinstack_users.config import Settings

# RFC 9106 second recommended option (64 MiB, 3 passes) is too slow for 2-core dev boxes under
# load; 19 MiB / 2 passes is OWASP's argon2id baseline.
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)
_bulkhead: Bulkhead | None = None


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
    return await _hashing().run(_hasher.hash, password)


def _check(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(password_hash: str, password: str) -> bool:
    return await _hashing().run(_check, password_hash, password)
