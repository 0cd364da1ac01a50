"""Bounded concurrency for CPU-heavy work (password hashing): shed at once instead of queueing
into a timeout.

A `Bulkhead` runs at most `limit` jobs at a time on threads of its own. A job that finds them
busy may wait when its expected wait (the jobs ahead of it times the measured duration of a job,
divided by `limit`) is within `max_wait` and at most `queue` wait already; otherwise it is refused
at once with 503 `external service unavailable` and `Retry-After`. So the queue is as deep as the
machine is fast: under a burst the caller learns in milliseconds that it should come back,
instead of every request waiting its turn in an unbounded queue until the gateway gives up with a
504 while the work goes on behind it. A job that waited a quarter longer than `max_wait` anyway
(a misestimate: jobs slow down as a burst takes the machine) or past its request's deadline gives
up too, so with the default half-second `max_wait` even that refusal reaches the client within a
second (a cap of twice `max_wait` let some through the gateway after 1.1 s under
`bench.run overload`; half as long again, after up to 0.94 s).

Its threads run at a lower CPU priority (nice 10): on a small machine the hashing takes every
idle cycle, yet the event loops (this service's other routes, the other services) get the CPU
first, so a burst of logins does not slow down everything else.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from prometheus_client import Counter, Gauge

from pinstack_kit import deadline
from pinstack_kit.errors import Overloaded

log = logging.getLogger("pinstack.overload")

T = TypeVar("T")

BULKHEAD_RUNNING = Gauge("bulkhead_running", "Jobs running in a bulkhead", ["bulkhead"])
BULKHEAD_WAITING = Gauge("bulkhead_waiting", "Jobs waiting for a bulkhead", ["bulkhead"])
BULKHEAD_SHED = Counter("bulkhead_shed_total", "Jobs refused by a bulkhead, by reason", ["bulkhead", "reason"])

BACKGROUND_NICE = 10
# A waiter gives up after this many times its allowed wait (see the module doc).
MISESTIMATE = 1.25


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask, not the whole machine's)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _lower_priority() -> None:
    try:  # a thread is a task on Linux: this renices only the calling thread
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)
    except (AttributeError, OSError):
        pass


class Bulkhead:
    def __init__(self, name: str, *, limit: int, queue: int, max_wait: float) -> None:
        self.name = name
        self.limit = limit
        self.queue = queue
        self.max_wait = max_wait
        self._executor = ThreadPoolExecutor(limit, thread_name_prefix=name, initializer=_lower_priority)
        self._slots: asyncio.Semaphore | None = None
        self._running = 0
        self._waiting = 0
        self.job_seconds = 0.1  # moving average of a job's duration; a cautious guess until measured
        BULKHEAD_RUNNING.labels(name).set(0)
        BULKHEAD_WAITING.labels(name).set(0)

    def _shed(self, why: str) -> Overloaded:
        BULKHEAD_SHED.labels(self.name, why).inc()
        return Overloaded(
            f"{self.name} {why}: {self._running} running, {self._waiting} waiting, {self.job_seconds * 1000:.0f} ms a job"
        )

    async def run(self, job: Callable[..., T], *args: object) -> T:
        """`job(*args)` on a thread of the bulkhead, once a slot is free."""
        deadline.check(self.name)  # nobody waits for the answer any more
        if self._slots is None:  # made in the running loop
            self._slots = asyncio.Semaphore(self.limit)
        if self._slots.locked():
            await self._wait_for_slot(self._slots)
        else:
            await self._slots.acquire()  # free: immediate
        self._running += 1
        BULKHEAD_RUNNING.labels(self.name).inc()
        started = time.perf_counter()
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, job, *args)
        finally:
            # A moving average, but never below the last job: when the machine gets busier the
            # estimate follows at once (over-admitting would turn into late refusals).
            took = time.perf_counter() - started
            self.job_seconds = max(took, 0.8 * self.job_seconds + 0.2 * took)
            self._running -= 1
            BULKHEAD_RUNNING.labels(self.name).dec()
            self._slots.release()

    @property
    def idle(self) -> bool:
        """No job running or waiting."""
        return self._running == 0 and self._waiting == 0

    def admit(self) -> None:
        """Refuse now what `run` would refuse: a cheap check before work that is only worth doing
        if the job will run (reading the hash to verify ties up a database connection)."""
        if self._slots is None or not self._slots.locked():
            return
        if self._waiting >= self.queue:
            raise self._shed("queue full")
        if (self._waiting + 1) * self.job_seconds / self.limit > self.max_wait:
            raise self._shed("queue too slow")

    async def _wait_for_slot(self, slots: asyncio.Semaphore) -> None:
        self.admit()
        wait = MISESTIMATE * self.max_wait
        if (d := deadline.current()) is not None and d.binding:
            wait = min(wait, d.remaining())
        self._waiting += 1
        BULKHEAD_WAITING.labels(self.name).inc()
        try:
            await asyncio.wait_for(slots.acquire(), wait)
        except TimeoutError:
            deadline.check(self.name)  # the caller gave up: a 504, not an invitation to retry
            raise self._shed("waited too long") from None
        finally:
            self._waiting -= 1
            BULKHEAD_WAITING.labels(self.name).dec()

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
