"""Request deadlines that travel with the request, so nobody commits work its caller gave up on.

The gateway gives every request a budget (its `UPSTREAM_TIMEOUT_SECONDS`). Each call to another
service carries what is left of it, minus a margin for the answer's way back, in
`X-Request-Timeout-Ms`: a relative budget, so the machines' clocks need not agree (gRPC's
`grpc-timeout` works the same way). A service that receives it bounds its own calls and waits by
it, and refuses to commit once it has passed (`check`, called by the request's session before its
commit): the answer is then a 504 and nothing was written, so a caller that answered its client
"timeout" never has a write behind its back. Where part of the work already committed elsewhere
(auth's register after the users service created the account), the rest must finish:
`must_finish()` lifts the check for that request.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterable
from contextvars import Token
from dataclasses import dataclass

from pinstack_kit.errors import ServiceTimeout

HEADER = "X-Request-Timeout-Ms"
_HEADER_KEY = HEADER.lower().encode()
MAX_BUDGET_SECONDS = 300.0


@dataclass
class Deadline:
    at: float  # time.monotonic()
    binding: bool = True  # False once the request's work must finish whatever the time

    def remaining(self) -> float:
        return self.at - time.monotonic()


_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("deadline", default=None)


class DeadlineExceeded(ServiceTimeout):
    """The caller's budget is spent: stop before writing anything (504 `external service timeout`)."""


def current() -> Deadline | None:
    return _current.get()


def check(what: str = "commit") -> None:
    """Raise `DeadlineExceeded` when the request's deadline passed (and its work may still stop)."""
    deadline = _current.get()
    if deadline is not None and deadline.binding and deadline.remaining() <= 0:
        raise DeadlineExceeded(reason=f"deadline passed {-deadline.remaining() * 1000:.0f} ms before {what}")


def must_finish() -> None:
    """From here on this request's work completes even past its deadline (see the module docstring)."""
    deadline = _current.get()
    if deadline is not None:
        deadline.binding = False


# How long a caller still waits for an answer past its own deadline. The callee stops itself at
# the budget the header gives it, or finishes what already committed (`must_finish`): waiting for
# that answer, instead of answering "timeout" while the callee commits, is what keeps a 504 from
# hiding a write (seen on a busy machine: a 0.15 s budget, accounts behind 504s). A hung callee
# still ends the call within this grace.
GRACE_SECONDS = 0.5


def outgoing(timeout: float) -> tuple[float, dict[str, str]]:
    """The timeout of a call to another service and the header that hands it the rest of the
    budget: what is left, less a margin (5 %, 20-250 ms) for its answer to reach us in time; the
    call itself may take GRACE_SECONDS longer, for the callee's own answer to arrive."""
    deadline = _current.get()
    if deadline is None or not deadline.binding:  # no deadline, or work that must finish
        return timeout, {}
    left = deadline.remaining()
    if left <= 0:
        raise DeadlineExceeded(reason="deadline passed before calling another service")
    margin = min(max(left * 0.05, 0.02), 0.25)
    return min(timeout, left) + GRACE_SECONDS, {HEADER: str(max(1, int((left - margin) * 1000)))}


def parse_budget(value: bytes) -> float | None:
    """Seconds from a header value; None (no deadline) for anything but a non-negative integer."""
    text = value.decode("latin-1").strip()
    if not text.isdigit() or len(text) > 12:
        return None
    return min(int(text) / 1000, MAX_BUDGET_SECONDS)


def enter(headers: Iterable[tuple[bytes, bytes]], default_seconds: float | None = None) -> Token[Deadline | None]:
    """Start a request's deadline: the budget it brought, at most `default_seconds` when the app
    has one (the gateway: the edge decides how long a request may take). The request layer
    (observability.RequestMiddleware) calls it and `leave` around each request."""
    budget = default_seconds
    for name, value in headers:
        if name == _HEADER_KEY:
            given = parse_budget(value)
            if given is not None:
                budget = given if budget is None else min(budget, given)
            break
    return _current.set(None if budget is None else Deadline(time.monotonic() + budget))


def leave(token: Token[Deadline | None]) -> None:
    _current.reset(token)
