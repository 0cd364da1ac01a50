"""`/healthz` (the process is alive) and `/readyz` (its dependencies answer)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from starlette.responses import Response

from pinstack_kit.envelope import error_response, ok

ReadinessCheck = Callable[[], Awaitable[object]]

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="Liveness: the process serves requests (and runs its worker loops, if inline)")
async def healthz(request: Request) -> Response:
    stuck_loops = getattr(request.app.state, "stuck_loops", None)
    if stuck_loops and (stuck := stuck_loops()):
        return error_response(503, "worker loops crashed or stalled: " + ", ".join(stuck))
    return ok({"status": "ok"})


@router.get("/readyz", summary="Readiness: every dependency answers")
async def readyz(request: Request) -> Response:
    checks: dict[str, ReadinessCheck] = request.app.state.readiness_checks
    results = await asyncio.gather(*(_probe(check) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    failing = sorted(name for name, result in report.items() if result != "ok")
    if failing:
        return error_response(503, "not ready: " + ", ".join(f"{n} ({report[n]})" for n in failing))
    return ok({"status": "ready", "checks": report})


async def _probe(check: ReadinessCheck) -> str:
    try:
        await asyncio.wait_for(check(), timeout=1.0)
    except Exception as exc:  # any failure means "not ready"; the reason goes into the report
        return type(exc).__name__
    return "ok"
