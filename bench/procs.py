"""CPU time and resident memory of the local stack's processes, read from /proc.

`make up` records a pid file per component in the state folder (.stack/run/<name>.pid); a
component's CPU is its own and that of its live descendants (PostgreSQL's backends are children of
the postmaster). A bench step's CPU per request is the CPU the stack spent during the step divided
by the requests it answered: what the issue's "CPU per request summed over every process it
touches" asks for, plus what the idle rest of the stack spent meanwhile (reported apart).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from bench.social import ROOT

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
RUN_DIR = Path(os.environ.get("PINSTACK_STATE_DIR") or ROOT / ".stack") / "run"


def _stat(pid: int) -> tuple[int, float, int] | None:
    """(parent pid, CPU seconds, resident bytes) of a live process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()  # after the command name, which may hold spaces
    cpu = (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    return int(fields[1]), cpu, int(fields[21]) * PAGE


def components() -> dict[str, int]:
    """Component name -> pid, from the stack's pid files."""
    found = {}
    for pidfile in sorted(RUN_DIR.glob("*.pid")):
        try:
            found[pidfile.stem] = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return found


@dataclass
class Sample:
    cpu: dict[str, dict[int, float]]  # component -> pid -> CPU seconds
    rss: dict[str, int]  # component -> resident bytes (with its descendants)


def sample(roots: dict[str, int] | None = None) -> Sample:
    roots = components() if roots is None else roots
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            table[int(entry)] = found
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    cpu: dict[str, dict[int, float]] = {}
    rss: dict[str, int] = {}
    for name, root in roots.items():
        if root not in table:
            continue
        pids, todo = [], [root]
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(children.get(pid, ()))
        cpu[name] = {pid: table[pid][1] for pid in pids}
        rss[name] = sum(table[pid][2] for pid in pids)
    return Sample(cpu, rss)


def cpu_spent(before: Sample, after: Sample) -> dict[str, float]:
    """CPU seconds each component spent between two samples (processes alive at the second)."""
    spent = {}
    for name, pids in after.cpu.items():
        earlier = before.cpu.get(name, {})
        spent[name] = sum(max(0.0, seconds - earlier.get(pid, 0.0)) for pid, seconds in pids.items())
    return spent


def wait_quiet(cores: float = 0.25, window: float = 0.5, timeout: float = 30.0) -> float:
    """Waits until the stack spends less than `cores` of CPU over `window` seconds (the work a
    previous step left behind: queued password hashes, consumers catching up on seeded events),
    at most `timeout` seconds; how long it waited. Each step then measures itself, not the tail of
    the one before."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = sample()
        time.sleep(window)
        if sum(cpu_spent(before, sample()).values()) < cores * window:
            break
    return time.monotonic() - started
