"""`make chaos`: faults under load on a private stack; counts lost and duplicated writes.

    python -m pinstack_e2e.chaos [--duration S] [--rate 8] [--seed N] [--hold 3] [--only kafka,posts]

Starts a stack of its own (scripts/stack.py with a temporary state folder and free ports on
127.0.0.1: PostgreSQL, Redis, Kafka, every service, worker and the gateway; the dev stack of
`make up` is not touched), drives writes and reads through its gateway, and in turn stops and
restarts Kafka, Redis, PostgreSQL, each service API and each worker (outbox relay + consumers),
waiting for recovery after each. Then it checks that no accepted write was lost, no event was
applied twice, every service is ready, and that every refused request got a documented error
(503 `external service unavailable`; no answer only while the gateway is down). It prints a report
per fault and exits 1 when anything was lost, duplicated or undocumented, did not recover, or a
fault it was asked to run was skipped.
Bounded: by default the drill runs every fault and the load lasts until the last one recovered
(at most rate x the faults' worst case, FAULT_BUDGET each); with --duration the load sends at most
rate x duration requests and no fault starts after it (a fault that no longer fits fails the run).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pinstack_e2e.chaos_drill import APIS, INFRA, RECOVERY_TIMEOUT, STACK_ENV, WORKERS, Drill, format_report
from pinstack_e2e.stack import PrivateStack

FAULTS = [*INFRA, *APIS, *WORKERS]
# The worst case of one fault past its hold: stopping (SIGKILL after 15 s), restarting, recovering.
FAULT_BUDGET = 15.0 + 60.0 + RECOVERY_TIMEOUT


def worst_case(faults: list[str], hold: float) -> float:
    return len(faults) * (hold + FAULT_BUDGET)


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pinstack_e2e.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of load; no fault starts later (default: until every fault has run and recovered)",
    )
    parser.add_argument("--rate", type=float, default=8.0, help="requests per second through the gateway")
    parser.add_argument("--seed", type=int, default=None, help="seed of the load's choices (printed)")
    parser.add_argument("--hold", type=float, default=3.0, help="seconds each part stays down")
    parser.add_argument("--only", default="", help=f"comma-separated faults (default all: {','.join(FAULTS)})")
    parser.add_argument("--keep", action="store_true", help="leave the private stack running (prints its folder)")
    args = parser.parse_args(argv)
    if args.rate <= 0 or (args.duration is not None and args.duration <= 0) or args.hold < 0:
        parser.error("--rate and --duration must be positive, --hold not negative")
    args.faults = [f for f in args.only.split(",") if f] or FAULTS
    unknown = set(args.faults) - set(FAULTS)
    if unknown:
        parser.error(f"unknown faults {sorted(unknown)}; choose from {', '.join(FAULTS)}")
    if args.seed is None:
        args.seed = random.SystemRandom().randrange(1, 1_000_000)
    return args


async def drill(stack: PrivateStack, args: argparse.Namespace) -> int:
    started = time.monotonic()
    if args.duration is None:
        duration, deadline = worst_case(args.faults, args.hold), float("inf")
        log(f"{len(args.faults)} faults: the load runs until the last recovered (at most {duration:.0f}s)")
    else:
        duration, deadline = args.duration, started + args.duration
    runner = Drill(stack, rate=args.rate, max_requests=int(args.rate * duration), seed=args.seed, log=log)
    report = await runner.run(args.faults, hold=args.hold, deadline=deadline)
    print(format_report(report), flush=True)
    return 0 if report.ok else 1


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    state = Path(tempfile.mkdtemp(prefix="pinstack-chaos-"))
    stack = PrivateStack(state, env=STACK_ENV)
    log(f"seed {args.seed}; private stack in {state} (gateway {stack.service_url('gateway')})")
    t0 = time.monotonic()
    try:
        stack.up_all()
        log(f"private stack up in {time.monotonic() - t0:.0f}s")
        return asyncio.run(drill(stack, args))
    except RuntimeError as exc:
        log(f"failed: {exc}")
        return 2
    finally:
        if args.keep:
            log(f"kept the private stack: PINSTACK_STATE_DIR={state} scripts/stack.py down")
        else:
            try:
                stack.down()
            finally:
                if (state / "logs").is_dir():
                    logs = Path(tempfile.mkdtemp(prefix="pinstack-chaos-logs-"))
                    shutil.copytree(state / "logs", logs, dirs_exist_ok=True)
                    log(f"logs of every part: {logs}")
                shutil.rmtree(state, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
