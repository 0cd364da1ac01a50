"""Helpers of the node tier (e2e/node): the node's kubectl and helm, the installed platform, and
the one bounded wait."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from pinstack_e2e.wait import wait_for

__all__ = ["RELEASE", "SERVICES", "Node", "Platform", "unavailable", "wait_for"]

RELEASE = "pinstack"  # the chart reads "<release>-<service>-connection", the environment's name
SERVICES = ("users", "auth", "posts", "relations", "notifications", "feed", "activity", "gateway")


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("PINSTACK_REQUIRE_NODE", "") not in ("", "0"):
        pytest.fail(f"{reason} (PINSTACK_REQUIRE_NODE is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Node:
    """The node's kubeconfig, with kubectl and helm bound to it."""

    kubeconfig: Path
    bin_dir: Path
    state_dir: Path
    api_host: str

    @property
    def env(self) -> dict[str, str]:
        helm = self.state_dir / "helm"
        return {
            **os.environ,
            "KUBECONFIG": str(self.kubeconfig),
            "PATH": f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "HELM_CACHE_HOME": str(helm / "cache"),
            "HELM_CONFIG_HOME": str(helm / "config"),
            "HELM_DATA_HOME": str(helm / "data"),
        }

    def run(
        self, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(self.bin_dir / tool), *args],
            input=input,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"{tool} {' '.join(args)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            )
        return done

    def kubectl(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("kubectl", *args, **kw)

    def helm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("helm", *args, **kw)

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json").stdout)


@dataclass
class Platform:
    node: Node
    namespace: str
    gateway: str  # http://<ClusterIP>
    images: dict[str, Any]
    values: list[str] = field(default_factory=list)  # helm arguments of the install

    def describe(self) -> str:
        """What a person would look at when something does not come up."""
        pods = self.node.kubectl("-n", self.namespace, "get", "pods,jobs", "-o", "wide", check=False).stdout
        events = self.node.kubectl(
            "-n", self.namespace, "get", "events", "--sort-by=.lastTimestamp", check=False
        ).stdout.splitlines()[-25:]
        return f"--- pods and jobs:\n{pods}\n--- last events:\n" + "\n".join(events)
