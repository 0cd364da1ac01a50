"""The node tier: Pinstack installed with Helm on the real one-node cluster of `make cluster`.

What runs where (scripts/deploy.py, the same command a person runs): the CRDs and the operator
are Helm releases in pinstack-system, the operator a pod; the umbrella chart installs every
service, its worker and the release's PinstackEnvironment in a namespace of this run; all pods
run from the images of `make images` imported into the node's containerd. PostgreSQL, Redis and
Kafka are the local infra of `make infra`, which listens on the node's bridge address too, so the
pods reach them as they would reach managed servers outside a cluster. Tests reach the gateway at
its ClusterIP from the host (kube-proxy's rules and the node's preferred Service route).

Every wait is bounded and says what it waited for. The tier fails (it does not skip) when
PINSTACK_REQUIRE_NODE is set and the node's binaries are missing; PINSTACK_NODE_KEEP=1 leaves
the installed platform for a look afterwards.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinstack_e2e.node import Node, Platform, installed, unavailable

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(__file__).parent in item.path.parents:
            item.add_marker(pytest.mark.node)


@pytest.fixture(scope="session")
def node() -> Node:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cluster.py"), "up", "--node", "--no-build", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode == 3:
        unavailable("the node's binaries are not built: run `make cluster` (builds them once)")
    if done.returncode != 0:
        unavailable(f"`scripts/cluster.py up --node` failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return Node(
        Path(info["kubeconfig"]), Path(info["bin_dir"]), Path(info["state_dir"]), info["api_host"], info["prometheus"]
    )


@pytest.fixture(scope="session")
def charts(node: Node, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of charts/ with every file:// dependency built (the working tree is not touched)."""
    copy = tmp_path_factory.mktemp("node-charts") / "charts"
    shutil.copytree(REPO / "charts", copy, ignore=shutil.ignore_patterns("charts", "tests", "__pycache__"))
    done = subprocess.run(
        [str(REPO / "scripts" / "chart-deps.sh"), str(copy)],
        env={**node.env, "HELM": str(node.bin_dir / "helm")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return copy


@pytest.fixture(scope="session")
def platform(node: Node) -> Iterator[Platform]:
    """`scripts/deploy.py up`: the CRDs and the operator (a pod) with Helm, then the umbrella
    chart with its PinstackEnvironment (deletionPolicy Delete) in a namespace of this run."""
    tag = f"node{uuid.uuid4().hex[:6]}"
    with installed(node, f"pinstack-{tag}", "--prefix", tag, "--deletion-policy", "Delete") as (plat, _):
        yield plat
