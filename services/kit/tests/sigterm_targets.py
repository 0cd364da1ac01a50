"""Processes the SIGTERM tests start: a service app with a slow endpoint (and one that tells
how its garbage collector is set), and a worker whose loops take a while to stop (one never does). Imported by uvicorn / `python -m` in a subprocess."""

import asyncio
import gc
import sys

from fastapi import APIRouter

from pinstack_kit.app import build_app
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.envelope import ok
from pinstack_kit.worker import run_loops

router = APIRouter()


@router.get("/slow")
async def slow(seconds: float) -> object:
    await asyncio.sleep(seconds)
    return ok({"slept": seconds})


@router.get("/gc")
async def collector() -> object:
    return ok({"threshold": gc.get_threshold(), "frozen": gc.get_freeze_count()})


def create_app() -> object:
    settings = BaseServiceSettings(service_name="sigterm-test", environment="test")
    return build_app(settings, title="sigterm", routers=[router], use_database=False, use_redis=False)


class SlowToStop:
    """Finishes its unit of work (`seconds`) after `stop()`, printing when it is done."""

    def __init__(self, name: str, seconds: float | None) -> None:
        self.name = name
        self.seconds = seconds
        self.stopping = asyncio.Event()

    async def run(self) -> None:
        print(f"{self.name} running", flush=True)
        await self.stopping.wait()
        if self.seconds is None:
            await asyncio.Event().wait()  # never finishes: the grace bound must cancel it
        await asyncio.sleep(self.seconds)
        print(f"{self.name} finished its work", flush=True)

    def stop(self) -> None:
        self.stopping.set()


if __name__ == "__main__":
    asyncio.run(run_loops([SlowToStop("polite", 1.0), SlowToStop("stuck", None)], grace_seconds=float(sys.argv[1])))
    print("worker exited", flush=True)
