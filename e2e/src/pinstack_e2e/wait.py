"""The one bounded wait of the e2e tier: poll until a condition holds or a deadline passes.

Everything that is eventually consistent (a notification after a follow, a feed entry after a
post, a Kafka message, a rate-limit window) is awaited through `eventually`; no test sleeps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The awaited condition did not hold before the deadline (an `AssertionError`: a test failure)."""

    def __init__(self, what: str, timeout: float, attempts: int, last: object) -> None:
        super().__init__(f"gave up after {timeout:.1f}s ({attempts} attempts) waiting for {what}; last value: {last!r}")
        self.last = last


def eventually(
    probe: Callable[[], T],
    until: Callable[[T], bool],
    *,
    what: str,
    timeout: float = 15.0,
    first_delay: float = 0.05,
    max_delay: float = 1.0,
    min_delay: Callable[[T], float] | None = None,
) -> T:
    """Call `probe` until `until(value)` is true; return that value, or fail saying `what` was awaited.

    The delay between attempts doubles from `first_delay` up to `max_delay`; `min_delay(value)`
    can ask for a longer pause (a `Retry-After`), still bounded by the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = first_delay
    attempts = 0
    while True:
        value = probe()
        attempts += 1
        if until(value):
            return value
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WaitTimeout(what, timeout, attempts, value)
        pause = max(delay, min_delay(value) if min_delay else 0.0)
        time.sleep(min(pause, remaining))
        delay = min(delay * 2, max_delay)


def wait_for(probe: Callable[[], T], what: str, timeout: float, diagnose: Callable[[], str] = str) -> T:
    """`eventually` for a probe whose truthy result is the answer and whose exceptions mean "not
    yet" (a resource not created yet); a timeout adds `diagnose()` (pods, events, logs)."""

    def attempt() -> T | Exception:
        try:
            return probe()
        except Exception as exc:  # not there yet
            return exc

    try:
        found = eventually(attempt, lambda v: bool(v) and not isinstance(v, Exception), what=what, timeout=timeout)
    except WaitTimeout as exc:
        raise AssertionError(f"{exc}\n{diagnose()}") from None
    assert not isinstance(found, Exception)
    return found
