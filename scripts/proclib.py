"""Process, port, cache and lock helpers shared by stack.py, cluster.py and images.py (all run as
scripts from this folder, so `import proclib` finds it)."""

from __future__ import annotations

import contextlib
import fcntl
import os
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

HOST = "127.0.0.1"


class ScriptError(Exception):
    """A failure with a message that tells the user what to do."""


def env_port(var: str, default: int) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        raise ScriptError(f"{var}={raw!r} is not a port number") from None
    if not 0 < port < 65536:
        raise ScriptError(f"{var}={port} is out of range 1..65535")
    return port


def pid_alive(pid: int | None, needle: str | None = None) -> bool:
    """True if `pid` runs (zombies count as dead) and, if given, its command line contains needle."""
    if not pid or pid <= 0:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat.rsplit(")", 1)[1].split()[0]
        if state in ("Z", "X"):
            return False
        if needle is not None:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            return needle in cmdline
        return True
    except (OSError, IndexError):
        return False


def cpu_seconds(pid: int) -> float | None:
    """CPU time `pid` and its waited-for children used so far (None once it is gone): a process
    whose CPU time grows is working, however slowly."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # utime, stime, cutime, cstime are fields 14-17 of stat(5); fields[0] is field 3
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def port_in_use(port: int, host: str = HOST) -> bool:
    """True if we could not bind host:port the way a server does (SO_REUSEADDR).

    Catches listening servers and also client connections that got `port` as their ephemeral
    local port (default ports like 59092 are inside Linux's ephemeral range 32768-60999); a mere
    connect test misses those, and the server then fails with "Address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def free_port() -> int:
    """A TCP port on HOST that nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cache_root() -> Path:
    """${XDG_CACHE_HOME:-~/.cache}/pinstack: downloaded and built artifacts, never committed."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pinstack"


def fmt_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def fmt_size(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


@contextlib.contextmanager
def file_lock(path: Path, what: str, say: Callable[[str], None] | None = None) -> Iterator[None]:
    """Hold an exclusive flock on `path`; when another process holds it, say so and wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            message = f"waiting for another {what} ({path}) ..."
            if say is not None:
                say(message)
            else:
                print(message, file=sys.stderr, flush=True)
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
