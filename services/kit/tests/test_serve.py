"""`python -m pinstack_kit.serve`: the one way every caller starts a service's API, and the one
shutdown policy, which fits the pods' and the local stack's budgets."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import uvicorn
import yaml

import pinstack_testing as testing
from pinstack_kit import serve
from pinstack_kit.config import BaseServiceSettings
from pinstack_testing import KAFKA, REDIS_URL, free_port, spawn_process, wait_healthy

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "scripts"))
import stack as stack_script

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.unit
class TestOptions:
    def test_a_service_is_served_with_the_settings_every_caller_shares(self) -> None:
        config = uvicorn.Config(**serve.options("users", port=8101))  # uvicorn accepts every one
        assert (config.app, config.factory) == ("pinstack_users.main:create_app", True)
        assert (config.host, config.port) == ("127.0.0.1", 8101)
        assert (config.loop, config.http) == ("uvloop", "httptools")
        assert config.access_log is False
        assert config.proxy_headers is True
        assert config.server_header is False
        assert config.timeout_keep_alive == 5
        assert config.timeout_graceful_shutdown == serve.GRACEFUL_SHUTDOWN_SECONDS == 10

    def test_a_factory_is_served_as_named(self) -> None:
        assert serve.options("bench.ceiling:create_app")["app"] == "bench.ceiling:create_app"


@pytest.mark.unit
class TestParse:
    def test_the_service_and_port_come_from_the_environment_as_in_the_image(self) -> None:
        parsed = serve.parse(["--host", "0.0.0.0"], {"SERVICE": "feed", "PORT": "8080"})
        assert parsed == serve.options("feed", host="0.0.0.0", port=8080)

    def test_arguments_win_over_the_environment(self) -> None:
        parsed = serve.parse(["users", "--port", "9001"], {"SERVICE": "feed", "PORT": "8080"})
        assert (parsed["app"], parsed["port"], parsed["host"]) == ("pinstack_users.main:create_app", 9001, "127.0.0.1")

    def test_processes_come_from_the_environment_or_the_command_line(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert "workers" not in serve.parse(["users"], {})  # one process: uvicorn serves it itself
        assert serve.parse(["users"], {"API_PROCESSES": "2"})["workers"] == 2
        assert serve.parse(["users", "--processes", "3"], {"API_PROCESSES": "2"})["workers"] == 3
        with pytest.raises(SystemExit):
            serve.parse(["users", "--processes", "0"], {})
        assert "1 or more" in capsys.readouterr().err

    def test_the_local_stack_names_processes_per_service(self) -> None:
        names = {"gateway", "posts"}
        assert stack_script.api_processes(" gateway=2, posts=3 ", names) == {"gateway": 2, "posts": 3}
        assert stack_script.api_processes("", names) == {}
        for wrong in ("gw=2", "gateway", "gateway=0", "gateway=x"):
            with pytest.raises(stack_script.StackError, match="is not <service>=<count>"):
                stack_script.api_processes(wrong, names)

    def test_without_a_service_it_says_so(self, capsys: pytest.CaptureFixture[str]) -> None:
        with pytest.raises(SystemExit):
            serve.parse([], {})
        assert "name the service" in capsys.readouterr().err

    def test_a_command_line_means_what_it_was_built_from(self) -> None:
        command = serve.command("sigterm_targets:create_app", port=18999, log_level="warning", python="py")
        assert command[:4] == ["py", "-m", "pinstack_kit.serve", "sigterm_targets:create_app"]
        assert serve.parse(command[3:], {}) == serve.options(
            "sigterm_targets:create_app", port=18999, log_level="warning"
        )


@pytest.mark.unit
class TestShutdownBudget:
    def test_the_local_stack_waits_longer_than_a_server_finishes_its_requests(self) -> None:
        assert stack_script.STOP_TIMEOUT > serve.GRACEFUL_SHUTDOWN_SECONDS

    def test_a_pod_finishes_its_requests_within_its_grace_period(self) -> None:
        """preStop sleep, then the drain, then the requests in flight, with time left for the
        lifespan to close the clients before the kubelet's SIGKILL."""
        drain = BaseServiceSettings.model_construct(environment="production").drain_seconds
        charts = [yaml.safe_load(path.read_text()) for path in sorted((REPO / "charts").glob("*/values.yaml"))]
        budgets = [c for c in charts if "preStopSleepSeconds" in c]
        assert budgets
        for values in budgets:
            used = values["preStopSleepSeconds"] + drain + serve.GRACEFUL_SHUTDOWN_SECONDS
            assert used + 5 <= values["terminationGracePeriodSeconds"], values


@pytest.mark.integration
def serving_children(pid: int) -> list[int]:
    """uvicorn's supervisor's children that serve (not multiprocessing's resource tracker)."""
    children = [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return [child for child in children if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


@pytest.mark.parametrize("processes", [1, 2])
def test_a_service_served_as_in_the_image_answers_and_stops_gracefully(
    pg_database: Callable[[str, Path], str], tmp_path: Path, processes: int
) -> None:
    """users on a free port, named by $SERVICE and $PORT as the image does, against the running
    infrastructure; SIGTERM ends it cleanly, and every process of it when it runs several."""
    port = free_port()
    env = {
        "API_PROCESSES": str(processes),
        "SERVICE": "users",
        "PORT": str(port),
        "ENVIRONMENT": "test",
        "DATABASE_URL": pg_database("users", REPO / "services" / "users" / "migrations"),
        "REDIS_URL": REDIS_URL,
        "REDIS_KEY_PREFIX": f"test:serve:{port}:",
        "KAFKA_BOOTSTRAP_SERVERS": KAFKA,
    }
    url = f"http://127.0.0.1:{port}"
    log = testing.test_log("serve-users", tmp_path)
    with spawn_process([sys.executable, "-m", "pinstack_kit.serve"], env, log) as proc:
        wait_healthy(url, proc, log)
        ready = httpx.get(f"{url}/readyz")
        assert ready.status_code == 200, ready.text
        assert "server" not in ready.headers
        served_by = serving_children(proc.pid) if processes > 1 else [proc.pid]
        assert len(served_by) == processes
        proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        # uvicorn ends by re-raising the SIGTERM it handled once it has shut down
        assert proc.wait(timeout=serve.GRACEFUL_SHUTDOWN_SECONDS + 5) in (0, -signal.SIGTERM)
    assert time.monotonic() - started < serve.GRACEFUL_SHUTDOWN_SECONDS
    assert not [pid for pid in served_by if Path(f"/proc/{pid}").exists()], "a process outlived the SIGTERM"
    output = log.read_text()
    assert "Application shutdown complete" in output, output[-3000:]
