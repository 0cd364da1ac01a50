"""The hashing's 19 MiB blocks go back to the system once hashing is idle (hashing.py).

Measured in a fresh interpreter: in this one, earlier tests' threads may have left glibc arenas
that already hold such blocks, and a new thread reuses them without growing."""

import subprocess
import sys

PROBE = """
import asyncio
from pinstack_users.config import Settings
from pinstack_users.credentials import hashing

def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024

async def main():
    hashing.configure(Settings(password_hash_concurrency=2))
    before = rss_mib()
    hashes = await asyncio.gather(*(hashing.hash_password(f"secret {i}") for i in range(6)))
    assert await hashing.verify_password(hashes[0], "secret 0")
    await asyncio.sleep(hashing.TRIM_AFTER_IDLE_SECONDS + 0.3)
    print(before, rss_mib())

asyncio.run(main())
"""


def test_hashing_memory_is_handed_back_once_idle() -> None:
    probe = [sys.executable, "-c", PROBE]
    done = subprocess.run(probe, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr
    before, idle = map(float, done.stdout.split())
    # Two threads hashed at once, 19 MiB each: kept, they would add 38 MiB (they did before).
    assert idle - before < 8, (before, idle)
