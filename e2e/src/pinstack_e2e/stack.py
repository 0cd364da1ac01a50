"""A private stack: `scripts/stack.py` driven as a subprocess with a state folder and ports of its
own, so a drill can stop and restart servers without disturbing the dev stack or other tests.

Only the script's command line and environment are used (PINSTACK_STATE_DIR, PINSTACK_<PART>_PORT):
e2e stays a black box, and the service names come from the registry (pinstack_contracts).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pinstack_contracts.services import NAMES
from pinstack_e2e.processes import free_port

STACK_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "stack.py"


class PrivateStack:
    """PostgreSQL, Redis and Kafka of its own (`up()`); `up_all()` also starts every service, its
    worker and the gateway the way `make up` does (on private ports too). `stop("posts")`,
    `stop("posts-worker")`, `stop("kafka")` and `up()` or `up_all()` stop and restart single parts.
    `env` (e.g. settings for the services) is passed on. `down()` stops it for good: its data (also
    PostgreSQL's, which lands in /var/tmp when the state folder is not reachable for the `postgres`
    user) and its reserved ports are given back; the logs stay in the state folder.
    """

    def __init__(self, state: Path, env: dict[str, str] | None = None) -> None:
        self.state = state
        self.ports = {name: free_port() for name in ("PG", "REDIS", "KAFKA", "KAFKA_CONTROLLER", "PROM")}
        self.service_ports = {name: free_port() for name in NAMES}
        self.env = {
            "PINSTACK_STATE_DIR": str(state),
            **{f"PINSTACK_{k}_PORT": str(v) for k, v in self.ports.items()},
            **{f"PINSTACK_{k.upper()}_PORT": str(v) for k, v in self.service_ports.items()},
            "PINSTACK_SERVE_NODE": "0",  # the node's pods use the main stack, never a test's own
            **(env or {}),
        }

    def run(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, str(STACK_SCRIPT), *args], env={**os.environ, **self.env}, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise RuntimeError(f"stack.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")

    def up(self) -> None:
        self.run("up", "--infra-only")

    def up_all(self) -> None:
        """Start whatever is not running, services and workers included (migrates first)."""
        self.run("up")

    def service_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.service_ports[name]}"

    def service_database(self, name: str) -> str:
        """The database `up_all()` made for a service (plain libpq URL)."""
        return f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/pinstack_{name}"

    def pid(self, component: str) -> int | None:
        """PID of a component started by `up_all()` (`posts`, `posts-worker`, `redis`...), if any."""
        try:
            return int((self.state / "run" / f"{component}.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def log(self, component: str) -> Path:
        return self.state / "logs" / f"{component}.log"

    def stop(self, *components: str) -> None:
        self.run("stop", *components)

    def down(self) -> None:
        """Stop everything and leave nothing on the machine (data, reserved ports) but its logs."""
        self.run("clean", "--keep-logs")

    @property
    def pg_admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/postgres"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['REDIS']}/0"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA']}"
