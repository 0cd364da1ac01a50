"""scripts/proclib.py, the process library of stack.py, cluster.py and node.py: what it starts is
detached and recorded by PID, and it stops a recorded process by that PID only while its command
line still shows what was started."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import proclib

pytestmark = pytest.mark.unit

SLEEPER = "import time; print('sleeping', flush=True); time.sleep(60)"
# ignores SIGTERM: only SIGKILL ends it
STUBBORN = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"


@pytest.fixture(autouse=True)
def no_leftovers() -> Iterator[None]:
    before = {proc.pid for proc in proclib.started_processes()}
    yield
    for proc in proclib.started_processes():
        if proc.pid not in before and proc.poll() is None:
            proc.kill()
            proc.wait()


def started(tmp_path: Path, code: str, name: str = "sleeper") -> tuple[int, Path, Path]:
    log, pidfile = tmp_path / f"{name}.log", tmp_path / "run" / f"{name}.pid"
    pid = proclib.spawn([sys.executable, "-c", code], log, cwd=tmp_path, pidfile=pidfile)
    assert proclib.wait_until(lambda: log.read_text().count("\n") >= 3, 10), log.read_text()
    return pid, log, pidfile


class TestSpawn:
    def test_a_process_is_detached_recorded_and_logged(self, tmp_path: Path) -> None:
        pid, log, pidfile = started(tmp_path, SLEEPER)
        assert proclib.read_pid(pidfile) == pid
        assert os.getpgid(pid) == pid != os.getpgid(0)  # its own group: a Ctrl-C of the script misses it
        assert proclib.running_pid(pidfile, "time.sleep") == pid
        assert "starting:" in log.read_text()
        assert log.read_text().endswith("sleeping\n")

    def test_an_exit_is_seen_with_its_code(self, tmp_path: Path) -> None:
        pid = proclib.spawn([sys.executable, "-c", "raise SystemExit(3)"], tmp_path / "dies.log")
        assert proclib.wait_until(lambda: not proclib.started_alive(pid), 10)
        assert proclib.exit_note(pid) == " (exit code 3)"


class TestStop:
    def test_a_recorded_process_is_stopped_and_its_pid_file_removed(self, tmp_path: Path) -> None:
        pid, _, pidfile = started(tmp_path, SLEEPER)
        said: list[str] = []
        assert proclib.stop_recorded("sleeper", pidfile, "time.sleep", 10, lambda _, m: said.append(m)) == pid
        assert not proclib.pid_alive(pid)
        assert not pidfile.exists()
        assert said == [f"stopping pid {pid} (SIGTERM)"]

    def test_a_pid_that_runs_something_else_is_left_alone(self, tmp_path: Path) -> None:
        pid, _, pidfile = started(tmp_path, SLEEPER)
        assert proclib.stop_recorded("sleeper", pidfile, "kafka.Kafka", 10) is None
        assert proclib.pid_alive(pid)
        assert not pidfile.exists()

    def test_a_process_that_ignores_sigterm_is_killed_after_the_timeout(self, tmp_path: Path) -> None:
        pid, _, _ = started(tmp_path, STUBBORN, "stubborn")
        said: list[str] = []
        proclib.terminate([("stubborn", pid, None)], 0.5, lambda _, m: said.append(m))
        assert not proclib.started_alive(pid)
        assert said[-1] == f"pid {pid} still running after 0s: SIGKILL"
        assert proclib.exit_note(pid) == f" (killed by {signal.SIGKILL.name})"

    def test_nothing_recorded_is_nothing_to_stop(self, tmp_path: Path) -> None:
        assert proclib.stop_recorded("none", tmp_path / "none.pid", None, 1) is None


def test_tail_reads_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("".join(f"{i}\n" for i in range(100)))
    assert proclib.tail(log, 2) == "98\n99"
    assert proclib.tail(tmp_path / "missing.log") == f"(no log at {tmp_path / 'missing.log'})"
    assert proclib.log_size(log) == log.stat().st_size
