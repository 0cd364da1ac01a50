"""The drill: faults in turn on a target while the load runs, recovery measured after each.

The target is a private stack of processes (`pinstack_e2e.stack.PrivateStack`) or the pods of a
platform on the node (`pinstack_e2e.node.PodTarget`): anything that can stop a part, bring
everything back, and tell whether a part restarted.

A fault stops one part (`stack.py stop <part>`: SIGTERM, SIGKILL after 15 s), keeps it down for
`hold` seconds (0: a rolling restart), then starts it again (`stack.py up`, which starts only what
is not running). It has recovered when every service answers `/readyz` 200 and a canary (a new
user who posts and follows) went through the gateway and reached the consumers: the post is in the
feed and activity projections, the follow has its notification. Every other part must keep its
PID: the drill restarts nothing but the part it stopped, so a part that died of a fault it should
have survived shows up as an unexpected restart.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import httpx
import psycopg

from pinstack_contracts.services import NAMES
from pinstack_e2e.chaos_load import Attempt, Ledger, Load, User
from pinstack_e2e.chaos_verify import Findings, Verifier

INFRA = ("kafka", "redis", "postgres")
APIS = NAMES  # the seven services and the gateway
WORKERS = tuple(f"{name}-worker" for name in NAMES if name != "gateway")
DOCUMENTED = {"503 external service unavailable"}
# No answer at all is documented only while the gateway itself is down or restarting.
GATEWAY_DOWN = {"connection refused"}
RECOVERY_TIMEOUT = 120.0

# The gateway's rate limits would refuse a load test's writes; they have their own tests. The
# workers run in processes of their own, as in a pod, so that each can be stopped by itself.
STACK_ENV = {
    "PINSTACK_WORKERS": "process",
    "RATE_LIMIT_WRITES_PER_MINUTE": "0",
    "RATE_LIMIT_AUTH_PER_MINUTE": "0",
    "RATE_LIMIT_LOGIN_FAILURES": "0",
}


@dataclass
class FaultResult:
    name: str
    hold: float
    stop_seconds: float = 0.0
    restart_seconds: float = 0.0
    recovery_seconds: float | None = None  # from the restart to the canary through; None: never
    unexpected_restarts: list[str] = field(default_factory=list)
    error: str = ""


@dataclass
class DrillReport:
    faults: list[FaultResult]
    ledger: Ledger
    findings: Findings
    settle_seconds: float
    healthy: dict[str, int]
    skipped: list[str] = field(default_factory=list)
    also_documented: frozenset[str] = frozenset()  # refusals the target's faults may cause too

    def undocumented(self) -> list[Attempt]:
        return [
            a
            for a in self.ledger.attempts
            if not a.accepted and not documented(a) and a.outcome not in self.also_documented
        ]

    @property
    def ok(self) -> bool:
        return (
            not self.skipped
            and not self.findings.lost
            and not self.findings.duplicated
            and not self.undocumented()
            and all(f.recovery_seconds is not None and not f.unexpected_restarts and not f.error for f in self.faults)
            and all(status == 200 for status in self.healthy.values())
        )


class Target(Protocol):
    def service_url(self, name: str) -> str: ...

    def service_database(self, name: str) -> str: ...

    def pid(self, component: str) -> object:
        """Anything that changes when the part restarted."""
        ...

    def stop(self, component: str) -> None: ...

    def up_all(self) -> None: ...


def documented(attempt: Attempt) -> bool:
    if attempt.outcome in DOCUMENTED:
        return True
    return attempt.outcome in GATEWAY_DOWN and attempt.phase in ("gateway", "canary gateway")


class Drill:
    def __init__(
        self,
        stack: Target,
        *,
        rate: float,
        max_requests: int,
        seed: int,
        log: Callable[[str], None],
        also_documented: frozenset[str] = frozenset(),
    ):
        self.stack = stack
        self.also_documented = also_documented
        self.gateway = stack.service_url("gateway")
        self.ledger = Ledger()
        self.load = Load(self.gateway, self.ledger, rate=rate, max_requests=max_requests, seed=seed)
        self.verifier = Verifier(stack.service_database, self.gateway, self.ledger)
        self.log = log
        self.canary_target: User | None = None

    # ------------------------------------------------------------------ parts

    def pids(self) -> dict[str, object]:
        return {part: self.stack.pid(part) for part in (*INFRA, *APIS, *WORKERS)}

    async def readiness(self) -> dict[str, int]:
        statuses: dict[str, int] = {}
        async with httpx.AsyncClient(timeout=3) as client:
            for name in APIS:
                try:
                    statuses[name] = (await client.get(f"{self.stack.service_url(name)}/readyz")).status_code
                except httpx.HTTPError:
                    statuses[name] = 0
        return statuses

    # ------------------------------------------------------------------ the canary

    async def canary(self, fault: str, deadline: float) -> bool:
        """A new user posts and follows the canary target; True once both reached the consumers."""
        phase = f"canary {fault}"
        assert self.canary_target is not None
        user = post_id = None
        followed = False
        while time.monotonic() < deadline:
            if user is None:
                user = await self.load.register(phase, pooled=False)
            elif post_id is None:
                post_id = await self.load.post(user, phase)
            elif not followed:
                followed = await self.load.follow(user, self.canary_target.id, phase)
                if not followed:
                    user, post_id = None, None  # the follow may have happened: start over with a new user
            elif await asyncio.to_thread(self._arrived, post_id, user.id, self.canary_target.id):
                return True
            await asyncio.sleep(0.25)
        return False

    def _arrived(self, post_id: int, follower: int, followee: int) -> bool:
        try:
            for service in ("feed", "activity"):
                with psycopg.connect(self.stack.service_database(service), connect_timeout=3) as conn:
                    if conn.execute("SELECT 1 FROM posts WHERE id = %s", (post_id,)).fetchone() is None:
                        return False
            with psycopg.connect(self.stack.service_database("notifications"), connect_timeout=3) as conn:
                row = conn.execute(
                    "SELECT 1 FROM notifications WHERE type = 'follow_created' AND user_id = %s"
                    " AND payload->>'follower_id' = %s",
                    (followee, str(follower)),
                ).fetchone()
            return row is not None
        except psycopg.Error:
            return False

    async def track_projection(self) -> None:
        """Keeps `ledger.reactable` to the accepted posts the activity service has projected."""

        def projected(ids: list[int]) -> set[int]:
            with psycopg.connect(self.stack.service_database("activity"), connect_timeout=2) as conn:
                return {int(i) for (i,) in conn.execute("SELECT id FROM posts WHERE id = ANY(%s)", (ids,))}

        while True:
            wanted = dict(self.ledger.posts)
            try:
                known = await asyncio.to_thread(projected, list(wanted))
                self.ledger.reactable = [(post, author) for post, author in wanted.items() if post in known]
            except psycopg.Error:
                pass  # PostgreSQL is the fault under way: keep the last list
            await asyncio.sleep(1.0)

    async def recovered(self, fault: str, deadline: float) -> bool:
        while time.monotonic() < deadline:
            if all(status == 200 for status in (await self.readiness()).values()):
                break
            await asyncio.sleep(0.25)
        else:
            return False
        return await self.canary(fault, deadline)

    # ------------------------------------------------------------------ faults

    async def fault(self, part: str, hold: float) -> FaultResult:
        result = FaultResult(part, hold)
        before = self.pids()
        self.load.phase = part
        self.log(f"fault {part}: stopping (down for {hold:.0f}s)")
        t0 = time.monotonic()
        try:
            await asyncio.to_thread(self.stack.stop, part)
            result.stop_seconds = time.monotonic() - t0
            await asyncio.sleep(hold)
            t1 = time.monotonic()
            await asyncio.to_thread(self.stack.up_all)
            result.restart_seconds = time.monotonic() - t1
            if await self.recovered(part, t1 + RECOVERY_TIMEOUT):
                result.recovery_seconds = time.monotonic() - t1
        except RuntimeError as exc:
            result.error = str(exc).strip().splitlines()[0][:300]
        after = self.pids()
        result.unexpected_restarts = [p for p in before if p != part and before[p] != after[p]]
        self.load.phase = f"after {part}"
        recovery = f"{result.recovery_seconds:.1f}s" if result.recovery_seconds is not None else "NOT RECOVERED"
        self.log(f"fault {part}: recovered in {recovery}")
        return result

    async def run(self, faults: list[str], *, hold: float, deadline: float, seed_users: int = 12) -> DrillReport:
        """Seeds users, runs the load through every fault (until `deadline`), settles, verifies."""
        self.log(f"seeding {seed_users} users")
        self.load.phase = "setup"
        while len(self.ledger.users) < seed_users:
            await self.load.register()
        self.canary_target = self.ledger.users[0]
        self.load.phase = "baseline"
        load = asyncio.create_task(self.load.run())
        tracker = asyncio.create_task(self.track_projection())
        results: list[FaultResult] = []
        skipped: list[str] = []
        try:
            await asyncio.sleep(2.0)
            for part in faults:
                if time.monotonic() >= deadline or load.done():
                    skipped.append(part)
                    continue
                results.append(await self.fault(part, hold))
                await asyncio.sleep(1.0)
        finally:
            tracker.cancel()
            self.load.stop()
            await load
            await self.load.aclose()
        self.log(f"load done: {self.load.sent} requests; waiting for the events to settle")
        settle = await self.verifier.settle()
        findings = await self.verifier.run()
        return DrillReport(
            results, self.ledger, findings, settle, await self.readiness(), skipped, self.also_documented
        )


def format_report(report: DrillReport) -> str:
    phases = report.ledger.by_phase()
    lines = ["", "chaos report", "=" * 100]
    lines.append(
        f"{'phase':<22}{'sent':>6}{'accepted':>10}  {'stop':>6} {'restart':>8} {'recovery':>9}  refused (status message: count)"
    )
    lines.append("-" * 100)
    faults = {f.name: f for f in report.faults}
    order = ["setup", "baseline"]
    for f in report.faults:
        order += [f.name, f"canary {f.name}", f"after {f.name}"]
    for phase in order:
        counts = phases.get(phase) or Counter()
        if not counts and phase not in faults:
            continue
        sent = sum(counts.values())
        accepted = counts.get("accepted", 0)
        refused = ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()) if k != "accepted") or "-"
        fault = faults.get(phase)
        timing = f"{'':>6} {'':>8} {'':>9}"
        if fault is not None:
            recovery = f"{fault.recovery_seconds:.1f}s" if fault.recovery_seconds is not None else "NEVER"
            timing = f"{fault.stop_seconds:>5.1f}s {fault.restart_seconds:>7.1f}s {recovery:>9}"
        lines.append(f"{phase:<22}{sent:>6}{accepted:>10}  {timing}  {refused}")
        if fault is not None and (fault.unexpected_restarts or fault.error):
            lines.append(f"{'':<22}!! unexpected restarts: {fault.unexpected_restarts} {fault.error}")
    lines.append("-" * 100)
    attempts = report.ledger.attempts
    undocumented = report.undocumented()
    by_op: dict[str, list[int]] = {}
    for a in attempts:
        counts_ = by_op.setdefault(a.op, [0, 0])
        counts_[0] += 1
        counts_[1] += a.accepted
    lines.append("by operation: " + ", ".join(f"{op} {acc}/{n}" for op, (n, acc) in sorted(by_op.items())))
    lines.append("checked: " + ", ".join(f"{k} {v}" for k, v in report.findings.checked.items()))
    lines.append(f"events settled in {report.settle_seconds:.1f}s; readiness after: {report.healthy}")
    if report.skipped:
        lines.append(f"SKIPPED (asked for, not run: out of time or load): {', '.join(report.skipped)}")
    for what, items in (("LOST", report.findings.lost), ("DUPLICATED", report.findings.duplicated)):
        for item in items[:20]:
            lines.append(f"{what}: {item}")
    undoc: dict[str, int] = {}
    for a in undocumented:
        key = f"{a.phase} / {a.op} / {a.outcome}"
        undoc[key] = undoc.get(key, 0) + 1
    for key, n in sorted(undoc.items()):
        lines.append(f"UNDOCUMENTED: {key}: {n}")
    failed = [a for a in attempts if a.status is not None and a.status >= 500]
    for a in failed[:20]:  # their ids find the gateway's and the services' log lines of each
        lines.append(f"5xx ({len(failed)} in all): {a.phase} / {a.op} / {a.outcome} / request id {a.request_id or '-'}")
    lines.append(
        f"totals: sent={len(attempts)} accepted={sum(a.accepted for a in attempts)}"
        f" lost={len(report.findings.lost)} duplicated={len(report.findings.duplicated)}"
        f" undocumented={len(undocumented)} skipped={len(report.skipped)} -> {'PASS' if report.ok else 'FAIL'}"
    )
    return "\n".join(lines)
