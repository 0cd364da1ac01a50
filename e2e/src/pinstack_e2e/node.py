"""Helpers of the node tier (e2e/node): the node's kubectl and helm, the installed platform, and
the one bounded wait."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit

import pytest

from pinstack_contracts.services import NAMES
from pinstack_e2e.client import Api, data_of
from pinstack_e2e.wait import eventually, wait_for

__all__ = [
    "RELEASE",
    "SERVICES",
    "LogTap",
    "Node",
    "Platform",
    "PodTarget",
    "installed",
    "journey",
    "unavailable",
    "wait_for",
]

REPO = Path(__file__).resolve().parents[3]
RELEASE = "pinstack"  # the chart reads "<release>-<service>-connection", the environment's name
SERVICES = NAMES  # each a Deployment of the umbrella chart


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("PINSTACK_REQUIRE_NODE", "") not in ("", "0"):
        pytest.fail(f"{reason} (PINSTACK_REQUIRE_NODE is set, so this is an error)", pytrace=False)
    pytest.skip(reason)


@dataclass
class Kube:
    """A cluster's kubeconfig, with the cached kubectl and helm bound to it (the control plane's
    fixture in pinstack-testing and the node below share it)."""

    kubeconfig: Path
    bin_dir: Path
    state_dir: Path

    @property
    def env(self) -> dict[str, str]:
        """Environment for a subprocess that talks to this cluster (KUBECONFIG, PATH, helm homes)."""
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
        self, tool: str, *args: str, input: str | None = None, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        """Run a cached binary (kubectl, helm, ...); raises with its output when `check` and it fails."""
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


@dataclass
class Node(Kube):
    """The real node's cluster."""

    api_host: str = ""
    prometheus: str = ""  # the node's Prometheus, which scrapes the pods (cluster.py)

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


class PodTarget:
    """The chaos drill's target (pinstack_e2e.chaos_drill.Target) on the node: a part is a server's
    StatefulSet pod (`postgres`, `redis`, `kafka`), a service's API pods (`posts`) or its worker's
    (`posts-worker`); stopping one deletes its pods gracefully and their controller replaces them.
    Services and databases are reached from this machine at their Service and pod addresses."""

    SERVERS = ("postgres", "redis", "kafka")

    def __init__(self, node: Node, namespace: str, release: str = RELEASE) -> None:
        self.node, self.ns, self.release = node, namespace, release
        self._pods: tuple[float, list[dict[str, Any]]] = (0.0, [])

    def _selector(self, part: str) -> str:
        if part in self.SERVERS:
            return f"app.kubernetes.io/name={part},app.kubernetes.io/instance={self.release}"
        service, _, worker = part.partition("-")
        component = "worker" if worker else "api"
        return (
            f"app.kubernetes.io/name={service},app.kubernetes.io/instance={self.release},"
            f"app.kubernetes.io/component={component}"
        )

    def pods(self, part: str) -> list[dict[str, Any]]:
        return list(self.node.json("-n", self.ns, "get", "pods", "-l", self._selector(part))["items"])

    def pid(self, component: str) -> object:
        """The part's pods and their restart counts: a new pod or a restarted container changes it."""
        return sorted(
            (
                p["metadata"]["uid"],
                sum(c.get("restartCount", 0) for c in p.get("status", {}).get("containerStatuses", [])),
            )
            for p in self.pods(component)
            if p["metadata"].get("deletionTimestamp") is None
        )

    def stop(self, component: str) -> None:
        names = [p["metadata"]["name"] for p in self.pods(component)]
        if not names:
            raise RuntimeError(f"no pod of {component} ({self._selector(component)}) in {self.ns}")
        self.node.kubectl("-n", self.ns, "delete", "pod", *names, "--wait=true", timeout=180)

    def up_all(self) -> None:
        """Every StatefulSet and Deployment of the namespace has all its replicas ready again."""

        def unready() -> list[str]:
            items = self.node.json("-n", self.ns, "get", "statefulsets,deployments")["items"]
            return [
                i["metadata"]["name"]
                for i in items
                if i.get("status", {}).get("readyReplicas", 0) < i["spec"].get("replicas", 1)
            ]

        wait_for(lambda: not unready(), f"every workload of {self.ns} ready", 300, lambda: str(unready()))

    def service_url(self, name: str) -> str:
        svc = self.node.json("-n", self.ns, "get", "service", f"{self.release}-{name}")
        return f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}"

    def service_database(self, name: str) -> str:
        """The service's own DATABASE_URL from its connection Secret, at the PostgreSQL pod's address."""
        secret = self.node.json("-n", self.ns, "get", "secret", f"{self.release}-{name}-connection")
        url = urlsplit(base64.b64decode(secret["data"]["DATABASE_URL"]).decode())
        pod = self.node.json("-n", self.ns, "get", "pod", f"{self.release}-postgres-0")
        credentials = url.netloc.rpartition("@")[0]
        return urlunsplit(url._replace(netloc=f"{credentials}@{pod['status']['podIP']}:{url.port or 5432}"))


class LogTap:
    """Follows the logs of every running pod of a namespace while it is open (`kubectl logs -f`,
    one per pod, into `directory`): a pod that a rollout or a drill deletes takes its logs with
    it, and a refused request is explained by the lines that carry its request id."""

    POLL_SECONDS = 2.0
    MAX_PODS = 200  # a bound on the followers, far above a platform's pods across a rollout

    def __init__(self, node: Node, namespace: str, directory: Path) -> None:
        self.node, self.ns, self.directory = node, namespace, directory
        self.followers: dict[str, subprocess.Popen[bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="log-tap", daemon=True)

    def __enter__(self) -> LogTap:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for follower in self.followers.values():
            follower.terminate()  # our own kubectl processes, by their PIDs
        for follower in self.followers.values():
            follower.wait(timeout=10)

    def _watch(self) -> None:
        while not self._stop.is_set() and len(self.followers) < self.MAX_PODS:
            done = self.node.kubectl("-n", self.ns, "get", "pods", "-o", "json", check=False)
            pods = json.loads(done.stdout)["items"] if done.returncode == 0 else []
            for pod in pods:
                name = pod["metadata"]["name"]
                statuses = pod.get("status", {}).get("containerStatuses", [])
                if name in self.followers or not any("running" in c.get("state", {}) for c in statuses):
                    continue
                with open(self.directory / f"{name}.log", "wb") as out:
                    follow = ["logs", "-f", "--all-containers", "--prefix", f"pod/{name}"]
                    self.followers[name] = subprocess.Popen(
                        [str(self.node.bin_dir / "kubectl"), "-n", self.ns, *follow],
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=self.node.env,
                    )
            self._stop.wait(self.POLL_SECONDS)

    def lines_with(self, needles: Iterable[str]) -> list[str]:
        """Every followed line that contains one of `needles` (request ids)."""
        wanted = [n for n in needles if n]
        found: list[str] = []
        for path in sorted(self.directory.glob("*.log")):
            found += [line for line in path.read_text(errors="replace").splitlines() if any(n in line for n in wanted)]
        return found


def journey(api: Api) -> None:
    """register, login, post, follow -> notification, home feed, like."""
    alice, bob = api.register("alice"), api.register("bob")
    relogged = api.login(alice.username, alice.password)
    assert relogged["access_token"]
    api.follow(bob, alice)
    eventually(
        lambda: api.notifications(alice),
        lambda items: any(n["type"] == "follow_created" for n in items),
        what="alice's follow notification (relations -> Kafka -> notifications, all in pods)",
        timeout=60,
    )
    post = api.create_post(alice, "Hello from the node")
    eventually(
        lambda: data_of(api.get("/feed", token=bob.access, params={"limit": 20}), 200)["items"],
        lambda items: any(i["id"] == post["id"] for i in items),
        what="alice's post in bob's home feed (post-events -> feed worker)",
        timeout=60,
    )
    liked = data_of(api.put(f"/posts/{post['id']}/like", token=bob.access), 200)
    assert liked == {"liked": True, "like_count": 1}
    assert data_of(api.get(f"/users/{alice.id}"), 200)["username"] == alice.username


@contextmanager
def installed(node: Node, namespace: str, *up: str, timeout: float = 1500) -> Iterator[tuple[Platform, dict[str, Any]]]:
    """`scripts/deploy.py up <up...>` in `namespace` (release RELEASE), as a person runs it; yields
    the platform and deploy.py's JSON result, then `deploy.py down` (PINSTACK_NODE_KEEP=1 keeps it)."""
    script = [sys.executable, str(REPO / "scripts" / "deploy.py")]
    where = ["--namespace", namespace, "--release", RELEASE]
    done = subprocess.run(
        [*script, "up", *where, *up, "--json"], env=node.env, capture_output=True, text=True, timeout=timeout
    )
    plat = Platform(node, namespace, "", {})
    try:
        assert done.returncode == 0, f"deploy.py up {' '.join(up)} failed:\n{done.stderr[-4000:]}\n{plat.describe()}"
        print(f"\n{done.stderr.strip()}", file=sys.stderr)
        result = json.loads(done.stdout.strip().splitlines()[-1])
        plat.gateway, plat.values, plat.images = result["gateway"], result["values"], result["images"]
        yield plat, result
    finally:
        if os.environ.get("PINSTACK_NODE_KEEP", "") not in ("", "0"):
            print(f"\n[node] PINSTACK_NODE_KEEP: left namespace {namespace}", file=sys.stderr)
        else:
            subprocess.run([*script, "down", *where], env=node.env, capture_output=True, timeout=600)
