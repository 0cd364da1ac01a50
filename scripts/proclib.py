"""Process, port, cache and lock helpers shared by stack.py, cluster.py, node.py and images.py (all
run as scripts from this folder, so `import proclib` finds it).

Processes are started detached and recorded by PID in a pid file; they are checked and stopped by
that PID only, never by name, and only while their command line still shows what we started (a
PID the kernel reused for something else is left alone)."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
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


def read_pid(path: Path) -> int | None:
    """The PID recorded in a pid file (None when there is none)."""
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def write_pid(path: Path, pid: int) -> None:
    path.write_text(f"{pid}\n")


def running_pid(path: Path, needle: str | None = None) -> int | None:
    """The PID recorded in `path` if that process runs (see pid_alive), else None."""
    pid = read_pid(path)
    return pid if pid_alive(pid, needle) else None


# processes started by this run of a script: their liveness and exit status come from waitpid
_started: dict[int, subprocess.Popen[bytes]] = {}


def spawn(
    cmd: list[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    pidfile: Path | None = None,
) -> int:
    """Start `cmd` detached, stdio to `log` after a `=====` line naming it; returns its PID (also
    written to `pidfile` if given). Its own session keeps it out of the script's process group, so
    a Ctrl-C of the script does not reach it and it outlives the script."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {shlex.join(cmd)}\n".encode())
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
        )
    _started[proc.pid] = proc
    if pidfile is not None:
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        write_pid(pidfile, proc.pid)
    return proc.pid


def started_processes() -> list[subprocess.Popen[bytes]]:
    return list(_started.values())


def started_alive(pid: int, needle: str | None = None) -> bool:
    """Whether a process runs: waited for when this run started it, else looked up in /proc."""
    proc = _started.get(pid)
    if proc is not None:
        return proc.poll() is None
    return pid_alive(pid, needle)


def exit_note(pid: int) -> str:
    """' (exit code N)' / ' (killed by SIGX)' for a process this run started that ended, else ''."""
    proc = _started.get(pid)
    if proc is None or proc.returncode is None:
        return ""
    if proc.returncode < 0:
        return f" (killed by {signal.Signals(-proc.returncode).name})"
    return f" (exit code {proc.returncode})"


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.2) -> bool:
    """Poll `check` until true or timeout."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


Say = Callable[[str, str], None]  # (component, message)


def terminate(procs: Sequence[tuple[str, int, str | None]], timeout: float, say: Say | None = None) -> None:
    """SIGTERM each (name, pid, needle) that is still ours, all at once; SIGKILL what still runs
    after `timeout` seconds."""
    live = [(n, p, nd) for n, p, nd in procs if pid_alive(p, nd)]
    for name, pid, _ in live:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if say:
            say(name, f"stopping pid {pid} (SIGTERM)")
    deadline = time.monotonic() + timeout
    while live and time.monotonic() < deadline:
        # Gone means gone, not "its command line is empty": an exiting process loses its command
        # line before it closes its files (its ports), and only then becomes a zombie.
        live = [(n, p, nd) for n, p, nd in live if pid_alive(p)]
        if live:
            time.sleep(0.1)
    for name, pid, needle in live:
        if not pid_alive(pid, needle):
            continue  # exiting by now, or no longer ours: never SIGKILL what we did not start
        if say:
            say(name, f"pid {pid} still running after {timeout:.0f}s: SIGKILL")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_until(functools.partial(_gone, pid), 5)


def _gone(pid: int) -> bool:
    return not pid_alive(pid)


def stop_recorded(name: str, pidfile: Path, needle: str | None, timeout: float, say: Say | None = None) -> int | None:
    """Stop the process recorded in `pidfile` if it still runs (see terminate) and remove the pid
    file; returns the PID it stopped, None when nothing ran."""
    pid = running_pid(pidfile, needle)
    if pid is not None:
        terminate([(name, pid, needle)], timeout, say)
    pidfile.unlink(missing_ok=True)
    return pid


def log_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log (read from its last 64 KiB)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64 * 1024))
            data = fh.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(data.splitlines()[-lines:])


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
