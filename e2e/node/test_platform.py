"""Pinstack on the real node: a journey through the pods, disruption and upgrade under load, and
the failures a person installing it must see clearly (see conftest.py for what runs where)."""

from __future__ import annotations

import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from pinstack_e2e.client import Api
from pinstack_e2e.node import RELEASE, SERVICES, Node, Platform, journey, wait_for

# the bounded load of the disruption tests: requests per second, for as long as the action takes
LOAD_RATE = 20.0
LOAD_LIMIT_SECONDS = 240.0


@pytest.fixture(scope="module")
def api(platform: Platform) -> Iterator[Api]:
    client = Api(platform.gateway)
    yield client
    client.close()


def test_every_workload_is_available_and_migrated(platform: Platform) -> None:
    node, ns = platform.node, platform.namespace
    deployments = node.json("-n", ns, "get", "deployments")["items"]
    names = {d["metadata"]["name"] for d in deployments}
    for svc in SERVICES:
        assert f"{RELEASE}-{svc}" in names, f"no Deployment for {svc}: {sorted(names)}"
    for d in deployments:
        status = d.get("status", {})
        assert status.get("availableReplicas") == d["spec"]["replicas"], (d["metadata"]["name"], status)
    # the migrations ran as pre-install hook Jobs (deleted once they succeeded) and left their tables
    pods = node.json("-n", ns, "get", "pods")["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert all(i.startswith("localhost/pinstack/") for i in images), images
    restarted = [
        (p["metadata"]["name"], c["name"])
        for p in pods
        for c in p.get("status", {}).get("containerStatuses", [])
        if c.get("restartCount", 0)
    ]
    previous = [
        node.kubectl("-n", ns, "logs", pod, "-c", container, "--previous", "--tail=30", check=False).stdout
        for pod, container in restarted
    ]
    assert not restarted, f"restarted: {restarted}\n" + "\n".join(previous) + platform.describe()


def test_a_journey_through_the_pods(api: Api) -> None:
    journey(api)


class Load:
    """Reads through the gateway at a bounded rate, from another thread, counting every outcome."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.outcomes: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        deadline = time.monotonic() + LOAD_LIMIT_SECONDS
        with httpx.Client(timeout=10.0) as http:
            while not self._stop.is_set() and time.monotonic() < deadline:
                t0 = time.monotonic()
                try:
                    status = http.get(self.url).status_code
                    self.outcomes[str(status)] += 1
                    if status != 200:
                        self.failures.append(f"{time.strftime('%H:%M:%S')} HTTP {status}")
                except httpx.HTTPError as exc:
                    self.outcomes[type(exc).__name__] += 1
                    self.failures.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}: {exc}")
                time.sleep(max(0.0, 1 / LOAD_RATE - (time.monotonic() - t0)))

    @contextmanager
    def running(self) -> Iterator[Load]:
        self._thread.start()
        time.sleep(1.0)
        try:
            yield self
        finally:
            time.sleep(2.0)
            self._stop.set()
            self._thread.join(15)


def read_url(api: Api, platform: Platform) -> str:
    user = api.register("reader")
    return f"{platform.gateway}/api/v1/users/{user.id}"


def ready_pods(node: Node, ns: str, service: str, release: str = RELEASE) -> list[str]:
    selector = f"app.kubernetes.io/name={service},app.kubernetes.io/instance={release},app.kubernetes.io/component=api"
    pods = node.json("-n", ns, "get", "pods", "-l", selector)
    return [
        p["metadata"]["name"]
        for p in pods["items"]
        if p["metadata"].get("deletionTimestamp") is None
        and any(c["type"] == "Ready" and c["status"] == "True" for c in p.get("status", {}).get("conditions", []))
    ]


@pytest.mark.parametrize("component", ["users", "gateway"])
def test_a_deleted_pod_is_replaced_without_a_failed_read(platform: Platform, api: Api, component: str) -> None:
    node, ns = platform.node, platform.namespace
    before = wait_for(lambda: ready_pods(node, ns, component) if len(ready_pods(node, ns, component)) == 2 else None,
                      f"two ready {component} pods", 120, platform.describe)  # fmt: skip
    with Load(read_url(api, platform)).running() as load:
        node.kubectl("-n", ns, "delete", "pod", before[0], "--wait=true", timeout=120)
        wait_for(
            lambda: len([p for p in ready_pods(node, ns, component) if p not in before]) == 1,
            f"a new ready {component} pod", 120, platform.describe,
        )  # fmt: skip
    assert sum(load.outcomes.values()) > 50, load.outcomes
    assert load.failures == [], f"{load.outcomes}: {load.failures[:10]}"


def retag(platform: Platform, service: str) -> str:
    """The same image under a new tag, imported into the node: an upgrade Kubernetes has to roll."""
    image = platform.images[service]
    new_tag = f"{image['tag']}-u{int(time.time())}"
    ref = image["ref"].rsplit(":", 1)[0] + f":{new_tag}"
    sock = str(platform.node.state_dir / "containerd" / "containerd.sock")
    subprocess.run(
        ["ctr", "-a", sock, "-n", "k8s.io", "images", "tag", image["ref"], ref], check=True, capture_output=True
    )
    return new_tag


def test_helm_upgrade_to_a_new_image_tag_fails_no_request(platform: Platform, api: Api, charts: Path) -> None:
    node, ns = platform.node, platform.namespace
    new_tag = retag(platform, "users")
    with Load(read_url(api, platform)).running() as load:
        node.helm(
            "upgrade", RELEASE, str(charts / "pinstack"), "-n", ns, *platform.values,
            "--set", f"users.image.tag={new_tag}", "--wait", "--timeout", "5m", timeout=400,
        )  # fmt: skip
    running = {
        c["image"]
        for p in node.json("-n", ns, "get", "pods", "-l", "app.kubernetes.io/name=users")["items"]
        for c in p["spec"]["containers"]
        if p["metadata"].get("deletionTimestamp") is None
    }
    assert all(i.endswith(f":{new_tag}") for i in running), running
    assert sum(load.outcomes.values()) > 20, load.outcomes
    assert load.failures == [], f"{load.outcomes}: {load.failures[:10]}"


def events_of(node: Node, ns: str, match: Callable[[dict[str, object]], bool]) -> list[str]:
    items = node.json("-n", ns, "get", "events")["items"]
    return [f"{e.get('reason')}: {e.get('message')}" for e in items if match(e)]


def test_a_failing_migration_fails_the_install_with_its_log(platform: Platform, charts: Path) -> None:
    node, ns = platform.node, platform.namespace
    release = "broken-migration"
    node.kubectl("-n", ns, "create", "secret", "generic", "broken-connection",
                 "--from-literal=DATABASE_URL=postgresql://nobody:wrong@127.0.0.1:1/none")  # fmt: skip
    try:
        done = node.helm(
            "install", release, str(charts / "users"), "-n", ns, "--wait", "--timeout", "3m",
            "--set", "image.registry=localhost", "--set", f"image.tag={platform.images['users']['tag']}",
            "--set", "connection.existingSecret=broken-connection", "--set", "migrations.backoffLimit=0",
            "--set", "worker.enabled=false", "--set", "replicaCount=1",
            check=False, timeout=300,
        )  # fmt: skip
        assert done.returncode != 0, "an install whose migration fails must fail"
        assert "pre-install" in done.stderr and "failed" in done.stderr, done.stderr
        jobs = node.json("-n", ns, "get", "jobs", "-l", f"app.kubernetes.io/instance={release}")["items"]
        assert jobs, "the failed migration Job is kept for its log"
        log = node.kubectl("-n", ns, "logs", f"job/{jobs[0]['metadata']['name']}", check=False).stdout
        assert "127.0.0.1" in log or "connect" in log.lower(), log[-2000:]
        # nothing of the service was started on a database that is not migrated
        assert not node.json("-n", ns, "get", "deployments", "-l", f"app.kubernetes.io/instance={release}")["items"]
    finally:
        node.helm("uninstall", release, "-n", ns, check=False)
        node.kubectl("-n", ns, "delete", "jobs", "-l", f"app.kubernetes.io/instance={release}", check=False)
        node.kubectl("-n", ns, "delete", "secret", "broken-connection", check=False)


def test_a_missing_secret_keeps_the_service_unready_with_a_clear_event(platform: Platform, charts: Path) -> None:
    node, ns = platform.node, platform.namespace
    release = "no-secret"
    try:
        node.helm(
            "install", release, str(charts / "users"), "-n", ns,
            "--set", "image.registry=localhost", "--set", f"image.tag={platform.images['users']['tag']}",
            "--set", "connection.existingSecret=does-not-exist", "--set", "migrations.mode=initContainer",
            "--set", "worker.enabled=false", "--set", "replicaCount=1",
        )  # fmt: skip
        events = wait_for(
            lambda: events_of(node, ns, lambda e: "does-not-exist" in str(e.get("message"))),
            "an event naming the missing Secret", 90, platform.describe,
        )  # fmt: skip
        assert any('secret "does-not-exist" not found' in e for e in events), events
        assert ready_pods(node, ns, "users", release) == []
        deployment = node.json("-n", ns, "get", "deployment", f"{release}-users")
        assert not deployment["status"].get("availableReplicas"), deployment["status"]
    finally:
        node.helm("uninstall", release, "-n", ns, check=False)
