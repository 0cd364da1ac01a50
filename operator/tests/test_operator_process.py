"""The operator as its own process (`python -m pinstack_operator`, as its Deployment runs it) against
the real control plane and the real local PostgreSQL, Redis and Kafka: killed mid-reconcile, its
CRD replaced under it, and run under exactly the RBAC role its chart renders.

Each test has its own namespace, outside the in-process operator's, and starts the processes it
needs. This module runs after test_operator_cluster.py, whose in-process operator would be left
blind by the CRD test (it cannot be restarted as a pod is).
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_sync
from operator_support import (
    ROOT,
    SERVICES,
    Env,
    acl_users,
    drop_everything,
    kafka_topics,
    new_env,
    operator_process,
    pg_state,
)

from pinstack_kit.testing import KubeCluster, free_port, stop_process

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

CRD = "pinstackenvironments.pinstack.io"


def apply_crd(cluster: KubeCluster) -> None:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "manifests" / "crd"))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD}", "--timeout=60s")


@pytest.fixture(scope="module")
def crd(kube_cluster: KubeCluster) -> KubeCluster:
    import os

    os.environ["KUBECONFIG"] = str(kube_cluster.kubeconfig)  # reconcile() run in the test itself
    apply_crd(kube_cluster)
    return kube_cluster


class Lone:
    """One environment in its own namespace and the operator processes of one test."""

    def __init__(self, cluster: KubeCluster, log: Path) -> None:
        self.tag = f"t{uuid.uuid4().hex[:8]}"
        self.env: Env = new_env(cluster, f"pso-lone-{self.tag}", self.tag, None)
        self.env.log = log
        self.cluster, self.log = cluster, log
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        process = operator_process(self.cluster, self.env.namespace, self.log, *args, env=env)
        self.processes.append(process)
        return process

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process, grace=30)


@pytest.fixture
def lone(crd: KubeCluster, tmp_path: Path) -> Iterator[Lone]:
    it = Lone(crd, tmp_path / "operator.log")
    try:
        yield it
    finally:
        e = it.env
        # An operator still running removes what it made (and its finalizer) itself.
        e.kubectl("delete", "pse", "--all", "--timeout=30s", check=False)
        it.stop()
        # No operator is left for this namespace: let the resource go without its finalizer.
        e.kubectl("patch", "pse", e.name, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False)
        drop_everything(it.tag)
        print(it.log.read_text(errors="replace")[-3000:] if it.log.exists() else "")


def assert_provisioned_exactly_once(e: Env) -> dict[str, Any]:
    """Ready, and every database, role, ACL user, topic, Secret and dashboard there once, with
    credentials that work; a further pass writes nothing."""
    body = e.wait_until(e.ready, "Ready", timeout=120)
    tag = e.tag
    expected = {f"{tag}_users", f"{tag}_auth", f"{tag}_relations"}
    assert pg_state(tag) == (expected, expected)
    assert acl_users(tag) == {f"{tag}.{s}" for s in SERVICES}
    assert {t for t in kafka_topics() if t.startswith(f"{tag}.")} == {f"{tag}.relation-events", f"{tag}.user-events"}
    secrets = json.loads(e.kubectl("get", "secret", "-l", "pinstack.io/environment=env", "-o", "json").stdout)
    assert sorted(o["metadata"]["name"] for o in secrets["items"]) == sorted(f"env-{s}-connection" for s in SERVICES)
    dashboards = json.loads(e.kubectl("get", "cm", "-l", "grafana_dashboard=1", "-o", "json").stdout)["items"]
    assert len(dashboards) == 6
    for service in ("users", "auth", "relations"):  # the passwords in the Secrets are the ones set
        with psycopg.connect(e.secret(service)["DATABASE_URL"]):
            pass
    for service in SERVICES:
        assert redis_sync.Redis.from_url(e.secret(service)["REDIS_URL"]).ping()

    from pinstack_operator.builders.spec import parse_spec
    from pinstack_operator.reconcile import reconcile

    outcome = asyncio.run(reconcile(parse_spec(e.name, e.namespace, body["spec"]), body))
    assert outcome.ready and outcome.writes == 0, outcome.changes
    return body


def test_operator_killed_mid_reconcile_converges_after_a_restart(lone: Lone) -> None:
    e, tag = lone.env, lone.tag
    first = lone.start()
    e.apply(e.manifest())

    def provisioning_began() -> bool:
        dbs, roles = pg_state(tag)
        return bool(dbs or roles or acl_users(tag))

    e.wait_until(provisioning_began, "the first reconcile to begin", timeout=120, interval=0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    status_at_kill = e.get("pse", e.name).get("status") or {}
    assert not status_at_kill.get("conditions"), "the first reconcile had already finished: no kill mid-way"
    print(f"killed mid-reconcile with {(pg_state(tag), acl_users(tag))}")

    lone.start()
    assert_provisioned_exactly_once(e)


def _health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_operator_recovers_when_its_crd_is_deleted_and_created_again(lone: Lone) -> None:
    """Kopf stays blind to a CRD created again under it ("Unresolved resources cannot be served"):
    the liveness probe fails, the kubelet restarts the pod (done here by hand, as the kubelet
    would), and an environment applied on the new CRD becomes Ready."""
    e, cluster = lone.env, lone.cluster
    others = [
        f"{o['metadata']['namespace']}/{o['metadata']['name']}"
        for o in json.loads(cluster.kubectl("get", "pse", "-A", "-o", "json").stdout)["items"]
    ]
    if others:  # the CRD's deletion would delete them (and wait for their finalizers)
        pytest.skip(f"other PinstackEnvironments exist: {others}")
    port = free_port()
    liveness = f"--liveness=http://127.0.0.1:{port}/healthz"
    lone.start(liveness)
    e.wait_until(lambda: _health(port) == 200, "the liveness endpoint to answer 200", timeout=60)

    cluster.kubectl("delete", "crd", CRD, "--timeout=60s")
    apply_crd(cluster)
    e.apply(e.manifest(policy="Delete"))
    # The probe's answer is cached by Kopf for 10 s.
    e.wait_until(lambda: _health(port) == 500, "the liveness probe to fail", timeout=60, interval=1)
    served = bool((e.get("pse", e.name).get("status") or {}).get("conditions"))
    print(f"before the restart, the new environment {'was' if served else 'was not'} served")

    lone.stop()  # what the kubelet does on a failed liveness probe
    lone.start(liveness)
    assert_provisioned_exactly_once(e)
    e.wait_until(lambda: _health(port) == 200, "the restarted operator to be alive", timeout=60)
