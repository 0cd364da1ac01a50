"""scripts/stack.py, which PrivateStack and `make up` drive: it waits for a starting server as a
person would, and a stopped private stack leaves nothing on the machine."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from pinstack_testing.stack import PrivateStack

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import proclib
import stack as stack_script


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = stack_script
    monkeypatch.setattr(module, "STALL_TIMEOUT", 1.5)
    monkeypatch.setattr(module, "START_TIMEOUT", 20.0)
    monkeypatch.setattr(module, "REPORT_EVERY", 0.5)
    yield module
    for proc in proclib.started_processes():
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _start(stack: ModuleType, log: Path, code: str) -> int:
    return int(stack.spawn([sys.executable, "-c", code], log))


@pytest.mark.unit
class TestWaitStarted:
    def test_a_working_process_is_waited_for_past_the_stall_window(
        self, stack: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        log, ready = tmp_path / "slow.log", tmp_path / "ready"
        # a log line every 0.3 s for 4 s (well past the 1.5 s stall window), then ready
        code = f"import time\nfor i in range(13):\n    print(i, flush=True); time.sleep(0.3)\nopen({str(ready)!r}, 'w').close()\ntime.sleep(30)"
        pid = _start(stack, log, code)
        stack.wait_started("slow", pid, "python", "made the file", ready.exists, log)
        assert ready.exists()
        assert "waiting until it has made the file" in capsys.readouterr().out

    def test_a_process_that_does_nothing_is_given_up_after_the_stall_window(
        self, stack: ModuleType, tmp_path: Path
    ) -> None:
        log = tmp_path / "idle.log"
        pid = _start(stack, log, "import time; time.sleep(30)")
        with pytest.raises(stack.StackError, match=r"idle \(pid \d+\) did no work for 2s .* has not never"):
            stack.wait_started("idle", pid, "python", "never", lambda: False, log)

    def test_an_exit_is_reported_at_once(self, stack: ModuleType, tmp_path: Path) -> None:
        log = tmp_path / "dies.log"
        pid = _start(stack, log, "raise SystemExit(3)")
        with pytest.raises(stack.StackError, match=r"dies exited \(exit code 3\)"):
            stack.wait_started("dies", pid, "python", "never", lambda: False, log)


def _reserved() -> set[int]:
    return set(stack_script._parse_ports(stack_script.RESERVED_PORTS.read_text()))


@pytest.mark.fault
@pytest.mark.timeout(600)
def test_a_stopped_private_stack_leaves_no_data_and_no_reserved_port(tmp_path: Path) -> None:
    # like pytest's own temporary folders: the `postgres` user cannot reach into it, so
    # PostgreSQL's data goes to /var/tmp
    state = tmp_path / "private"
    state.mkdir(mode=0o700)
    os.chmod(tmp_path, 0o700)
    before = _reserved()
    stack = PrivateStack(state)
    try:
        stack.up()
        ours = {int(port) for port in stack.ports.values()} - before
        if os.geteuid() == 0:
            assert ours and ours <= _reserved()
        location = state / "data" / "pg.location"
        external = Path(location.read_text().strip()) if location.exists() else None
        if os.geteuid() == 0:
            assert external is not None and external.is_dir()
    finally:
        stack.down()
    assert not (_reserved() & ours)
    assert external is None or not external.exists()
    assert [child.name for child in state.iterdir()] == ["logs"]
    assert (state / "logs" / "postgres.log").is_file()


@pytest.mark.unit
def test_a_kafka_cluster_id_never_reads_as_an_option(monkeypatch: pytest.MonkeyPatch) -> None:
    # uuid4 bytes whose URL-safe base64 starts with "-" (0xf8 >> 2 = 62) come first: the storage
    # tool refused such an id as a missing argument (a CI run met one)
    ids = iter([bytes([0xF8]) + bytes(15), bytes([0x04]) + bytes(15)])
    monkeypatch.setattr(stack_script.uuid, "uuid4", lambda: type("U", (), {"bytes": next(ids)})())
    cluster_id = stack_script.kafka_cluster_id()
    assert cluster_id == "BAAAAAAAAAAAAAAAAAAAAA"
