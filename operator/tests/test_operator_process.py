"""The operator as its own process (`python -m pinstack_operator`, as its Deployment runs it) against
the real control plane and the real local PostgreSQL, Redis and Kafka: killed mid-reconcile, its
CRD replaced under it, and run under exactly the RBAC role its chart renders.

Each test has its own namespace, outside the in-process operator's, and starts the processes it
needs. This module runs after test_operator_cluster.py, whose in-process operator would be left
blind by the CRD test (it cannot be restarted as a pod is).
"""

from __future__ import annotations

import asyncio
import functools
import json
import shutil
import signal
import subprocess
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import redis as redis_sync
import yaml
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

from pinstack_testing import free_port, stop_process
from pinstack_testing.cluster import KubeCluster

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
        self.cleanup: list[Callable[[], Any]] = []  # run after the processes stopped

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
        for undo in it.cleanup:
            undo()
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


# ------------------------------------------------------------------ RBAC: exactly what it needs


@functools.cache
def built_charts() -> Path:
    """A copy of charts/ with its file:// dependencies built (a clean clone has none built)."""
    copy = Path(tempfile.mkdtemp(prefix="operator-charts-")) / "charts"
    shutil.copytree(ROOT / "charts", copy, ignore=shutil.ignore_patterns("charts", "tests", "__pycache__"))
    done = subprocess.run(  # noqa: S603 (the repository's own script)
        [str(ROOT / "scripts" / "chart-deps.sh"), str(copy)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return copy


def chart_rules(cluster: KubeCluster) -> list[dict[str, Any]]:
    """The rules of the ClusterRole that charts/pinstack-operator renders."""
    rendered = cluster.helm("template", "op", str(built_charts() / "pinstack-operator"), "-n", "pinstack-system")
    roles = [d for d in yaml.safe_load_all(rendered.stdout) if d and d["kind"] == "ClusterRole"]
    assert len(roles) == 1, roles
    rules: list[dict[str, Any]] = roles[0]["rules"]
    return rules


def without(rules: list[dict[str, Any]], resource: str, verb: str) -> list[dict[str, Any]]:
    """`rules` less one verb on one resource (split out of its rule)."""
    out = []
    for rule in rules:
        if resource not in rule["resources"]:
            out.append(rule)
            continue
        assert verb in rule["verbs"], (resource, verb, rule)
        rest = [r for r in rule["resources"] if r != resource]
        if rest:
            out.append({**rule, "resources": rest})
        if verbs := [v for v in rule["verbs"] if v != verb]:
            out.append({**rule, "resources": [resource], "verbs": verbs})
    return out


def service_account_kubeconfig(lone: Lone, rules: list[dict[str, Any]], path: Path) -> dict[str, str]:
    """A ServiceAccount bound to a ClusterRole of `rules` only, and a kubeconfig that logs in as
    it (a token from the TokenRequest API): the environment for an operator process."""
    cluster, namespace, name = lone.cluster, lone.env.namespace, f"pso-rbac-{lone.tag}"
    objects = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": namespace}},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": namespace}],
        },
    ]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(objects))
    lone.cleanup.append(lambda: cluster.kubectl("delete", "clusterrole,clusterrolebinding", name, check=False))
    token = cluster.kubectl("create", "token", name, "-n", namespace, "--duration=1h").stdout.strip()
    admin = json.loads(cluster.kubectl("config", "view", "--raw", "--minify", "-o", "json").stdout)
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "pinstack", "cluster": admin["clusters"][0]["cluster"]}],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": "pinstack", "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config))
    denied = cluster.kubectl("--kubeconfig", str(path), "get", "pods", "-n", namespace, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr, "the account must not be an admin"
    return {"KUBECONFIG": str(path)}


def test_operator_needs_no_more_than_the_role_its_chart_grants(lone: Lone, tmp_path: Path) -> None:
    """Under a ServiceAccount bound only to the chart's ClusterRole: Ready, and deleted with
    deletionPolicy Delete, without one request refused (Kopf logs every 403 it meets)."""
    e = lone.env
    lone.start(env=service_account_kubeconfig(lone, chart_rules(lone.cluster), tmp_path / "sa.kubeconfig"))
    e.apply(e.manifest(policy="Delete"))
    assert_provisioned_exactly_once(e)
    e.kubectl("delete", "pse", e.name, "--timeout=60s")
    assert pg_state(lone.tag) == (set(), set()) and acl_users(lone.tag) == set()
    assert e.kubectl("get", "secret,cm", "-l", "pinstack.io/environment=env", "-o", "name").stdout == ""
    log = lone.log.read_text(errors="replace")
    assert "Resuming is processed" in log or "Creation is processed" in log  # it is this process's log
    assert "forbidden" not in log.lower(), [line for line in log.splitlines() if "orbidden" in line][:5]


@pytest.mark.parametrize(
    ("resource", "verb", "seen"),
    [
        # A provisioning step: the component's condition says why, Ready says ReconcileError.
        ("secrets", "create", "status"),
        # Its own status: nothing can say it there; the operator's log does.
        ("pinstackenvironments/status", "patch", "log"),
    ],
)
def test_a_verb_missing_from_the_role_is_a_visible_failure(
    lone: Lone, tmp_path: Path, resource: str, verb: str, seen: str
) -> None:
    e = lone.env
    rules = without(chart_rules(lone.cluster), resource, verb)
    lone.start(env=service_account_kubeconfig(lone, rules, tmp_path / "sa.kubeconfig"))
    e.apply(e.manifest())
    if seen == "status":

        def refused() -> dict[str, Any]:
            conds = {c["type"]: c for c in (e.get("pse", e.name).get("status") or {}).get("conditions", [])}
            return conds if conds.get("Ready", {}).get("reason") == "ReconcileError" else {}

        conds = e.wait_until(refused, "Ready=False, reason ReconcileError", timeout=60)
        assert conds["SecretsReady"]["reason"] == "Failed" and "Forbidden" in conds["SecretsReady"]["message"]
        assert f'cannot {verb} resource \\"{resource}\\"' in conds["SecretsReady"]["message"]
        assert conds["PostgresReady"]["status"] == "True"  # what it may do is still done
    else:

        def logged() -> bool:
            return f'cannot {verb} resource "{resource}"' in lone.log.read_text(errors="replace")

        e.wait_until(logged, f"the operator's log to say it cannot {verb} {resource}", timeout=60)
        assert not (e.get("pse", e.name).get("status") or {}).get("conditions")
