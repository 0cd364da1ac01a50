"""The node tier: Pinstack installed with Helm on the real one-node cluster of `make cluster`.

What runs where: the pods (every service, its worker, its migration Job) run on the node, from
the images of `make images` imported into the node's containerd; PostgreSQL, Redis and Kafka are
the local infra of `make infra`, which listens on the node's bridge address too (scripts/stack.py
does that when the node exists), so pods reach them the way they would reach managed servers
outside a cluster; the operator runs as a process of this checkout (as `make operator` does) and
provisions one PinstackEnvironment (External mode, deletionPolicy Delete) whose Secrets the charts
mount. Tests reach the gateway at its ClusterIP from the host (kube-proxy's rules and the
node's preferred Service route), which is what `kubectl port-forward` or a NodePort would give a
person.

Every wait is bounded and says what it waited for. The whole tier fails (it does not skip) when
PINSTACK_REQUIRE_NODE is set and the node, the images or the infra are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from pinstack_e2e.node import RELEASE, SERVICES, Node, Platform, unavailable, wait_for

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
    return Node(Path(info["kubeconfig"]), Path(info["bin_dir"]), Path(info["state_dir"]), info["api_host"])


@pytest.fixture(scope="session")
def servers() -> dict[str, str]:
    """host:port of PostgreSQL, Redis and Kafka as the node's pods reach them (`stack.py env`)."""
    found = {k: os.environ.get(f"PINSTACK_NODE_{k.upper()}", "") for k in ("pg", "redis", "kafka")}
    if not all(found.values()):
        unavailable(
            "the local infra does not listen on the node's bridge (PINSTACK_NODE_PG/REDIS/KAFKA unset): start the "
            'node first (`make cluster`), then `make infra`, and `eval "$(python3 scripts/stack.py env)"`'
        )
    return found


@pytest.fixture(scope="session")
def images(node: Node) -> dict[str, Any]:
    """Every image built (`make images`) and imported into the node's containerd."""
    script = [sys.executable, str(REPO / "scripts" / "images.py")]
    for args in (["build"], ["import", "--address", str(node.state_dir / "containerd" / "containerd.sock")]):
        done = subprocess.run([*script, *args], capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            unavailable(f"`images.py {' '.join(args)}` failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    catalogue: dict[str, Any] = json.loads(subprocess.run([*script, "json"], capture_output=True, text=True).stdout)
    return catalogue


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


def image_values(images: dict[str, Any]) -> list[str]:
    return [arg for svc in SERVICES for arg in ("--set", f"{svc}.image.tag={images[svc]['tag']}")]


def environment(namespace: str, servers: dict[str, str], tag: str) -> dict[str, Any]:
    pg_host, pg_port = servers["pg"].rsplit(":", 1)
    redis_host, redis_port = servers["redis"].rsplit(":", 1)
    return {
        "apiVersion": "pinstack.io/v1alpha1",
        "kind": "PinstackEnvironment",
        "metadata": {"name": RELEASE, "namespace": namespace},
        "spec": {
            "deletionPolicy": "Delete",
            "services": list(SERVICES),
            "postgres": {
                "host": pg_host,
                "port": int(pg_port),
                "sslMode": "disable",
                "databasePrefix": f"{tag}_",
                "adminSecretRef": {"name": "pg-admin"},
            },
            "redis": {
                "host": redis_host,
                "port": int(redis_port),
                "keyPrefix": f"{tag}.",
                "adminSecretRef": {"name": "redis-admin"},
            },
            "kafka": {
                "bootstrapServers": servers["kafka"],
                "topicPrefix": f"{tag}.",
                "topicDefaults": {"partitions": 2},
            },
            "dashboards": {"enabled": False},
            "alerts": {"enabled": False},
        },
    }


@pytest.fixture(scope="session")
def platform(
    node: Node, servers: dict[str, str], images: dict[str, Any], charts: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The operator provisions an environment, then `helm install --wait` of the umbrella chart."""
    tag = f"node{uuid.uuid4().hex[:6]}"
    namespace = f"pinstack-{tag}"
    node.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "manifests" / "crd"))
    node.kubectl("wait", "--for=condition=Established", "crd/pinstackenvironments.pinstack.io")
    node.kubectl("create", "namespace", namespace)
    node.kubectl("-n", namespace, "create", "secret", "generic", "pg-admin", "--from-literal=username=postgres",
                 "--from-literal=password=")  # fmt: skip
    node.kubectl("-n", namespace, "create", "secret", "generic", "redis-admin", "--from-literal=username=default",
                 "--from-literal=password=")  # fmt: skip
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    with log.open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "pinstack_operator", "--standalone", f"--namespace={namespace}"],
            env={**node.env, "METRICS_PORT": "0", "PYTHONUNBUFFERED": "1"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    values = ["-f", str(REPO / "charts" / "pinstack" / "ci" / "node-values.yaml"), *image_values(images)]
    plat = Platform(node, namespace, "", images, values)
    try:
        node.kubectl("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(environment(namespace, servers, tag)))

        def env_ready() -> bool:
            conds = node.json("-n", namespace, "get", "pse", RELEASE).get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        wait_for(env_ready, "the PinstackEnvironment to be Ready", 180, lambda: log.read_text()[-3000:])
        t0 = time.monotonic()
        node.helm(
            "install", RELEASE, str(charts / "pinstack"), "-n", namespace, "--wait", "--timeout", "10m", *values,
            timeout=900,
        )  # fmt: skip
        print(f"\n[node] helm install --wait: {time.monotonic() - t0:.0f}s", file=sys.stderr)
        ip = node.json("-n", namespace, "get", "service", f"{RELEASE}-gateway")["spec"]["clusterIP"]
        plat.gateway = f"http://{ip}"
        yield plat
    finally:
        if os.environ.get("PINSTACK_NODE_KEEP", "") not in ("", "0"):
            print(f"\n[node] PINSTACK_NODE_KEEP: left namespace {namespace} and the operator (pid {operator.pid})")
        else:
            tear_down(node, namespace, operator)


def tear_down(node: Node, namespace: str, operator: subprocess.Popen[bytes]) -> None:
    """helm uninstall, the environment (deletionPolicy Delete drops its databases and topics),
    the operator, the namespace."""
    node.helm("uninstall", RELEASE, "-n", namespace, "--wait", "--timeout", "3m", check=False, timeout=240)
    node.kubectl("-n", namespace, "delete", "pse", RELEASE, "--wait=true", "--timeout=120s", check=False, timeout=150)
    operator.terminate()
    try:
        operator.wait(30)
    except subprocess.TimeoutExpired:
        operator.kill()
    node.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
