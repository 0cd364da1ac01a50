"""The operator in-process (kopf.testing.KopfRunner) against the real control plane (make cluster)
and the real local PostgreSQL, Redis and Kafka. Every test uses its own namespace and name prefix.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis as redis_sync
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from kopf.testing import KopfRunner

from pinstack_kit.testing import KAFKA, PG_ADMIN_DSN, REDIS_URL, KubeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
# The servers `make infra` started (ports come from the environment: CI uses its own).
PG_PORT = int(urlsplit(PG_ADMIN_DSN).port or 5432)
PG = {"host": "127.0.0.1", "port": PG_PORT, "user": "postgres", "dbname": "postgres", "autocommit": True}
REDIS_PORT = int(urlsplit(REDIS_URL).port or 6379)
SERVICES = ["users", "auth", "relations", "gateway"]


@pytest.fixture(scope="module")
def worker_prefix() -> str:
    return f"pso-{uuid.uuid4().hex[:6]}-"


@pytest.fixture(scope="module")
def operator(kube_cluster: KubeCluster, worker_prefix: str) -> Iterator[KopfRunner]:
    """One operator per test module (and xdist worker), watching only this worker's namespaces."""
    import kubernetes.config.kube_config

    os.environ["KUBECONFIG"] = str(kube_cluster.kubeconfig)
    # Read at import time by the kubernetes client (Kopf logs in through it): point it here.
    kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kube_cluster.kubeconfig)
    kube_cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "manifests" / "crd"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/pinstackenvironments.pinstack.io")
    args = ["run", "--standalone", f"--namespace={worker_prefix}*", "-m", "pinstack_operator.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
    assert runner.exception is None or isinstance(runner.exception, SystemExit), runner.output[-3000:]


class Env:
    def __init__(self, cluster: KubeCluster, namespace: str, tag: str) -> None:
        self.cluster, self.namespace, self.tag, self.name = cluster, namespace, tag, "env"

    def kubectl(self, *args: str, **kw: Any) -> Any:
        return self.cluster.kubectl("-n", self.namespace, *args, **kw)

    def get(self, kind: str, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", kind, name, "-o", "json").stdout)

    def manifest(self, policy: str = "Retain", partitions: int = 2) -> dict[str, Any]:
        return {
            "apiVersion": "pinstack.io/v1alpha1",
            "kind": "PinstackEnvironment",
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "deletionPolicy": policy,
                "services": SERVICES,
                "postgres": {
                    "host": "127.0.0.1",
                    "port": PG_PORT,
                    "sslMode": "disable",
                    "databasePrefix": f"{self.tag}_",
                    "adminSecretRef": {"name": "pg-admin"},
                },
                "redis": {
                    "host": "127.0.0.1",
                    "port": REDIS_PORT,
                    "keyPrefix": f"{self.tag}.",
                    "adminSecretRef": {"name": "redis-admin"},
                },
                "kafka": {
                    "bootstrapServers": KAFKA,
                    "topicPrefix": f"{self.tag}.",
                    "topicDefaults": {"partitions": partitions, "retentionMs": 86400000},
                    "topics": [{"name": "relation-events", "partitions": 3, "config": {"cleanup.policy": "delete"}}],
                },
                "dashboards": {"folder": "Pinstack"},
            },
        }

    def apply(self, body: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=yaml.safe_dump(body))

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                last = check()
                if last:
                    return last
            except Exception as e:  # not there yet
                last = e
            time.sleep(0.5)
        raise AssertionError(f"timed out waiting for {what}: {last}")

    def ready(self) -> dict[str, Any]:
        body = self.get("pse", self.name)
        conds = {c["type"]: c for c in body.get("status", {}).get("conditions", [])}
        ok = conds.get("Ready", {}).get("status") == "True"
        return body if ok and body["status"]["observedGeneration"] == body["metadata"]["generation"] else {}

    def secret(self, service: str) -> dict[str, str]:
        data = self.get("secret", f"{self.name}-{service}-connection")["data"]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}


@pytest.fixture
def env(kube_cluster: KubeCluster, operator: KopfRunner, worker_prefix: str) -> Iterator[Env]:
    tag = f"t{uuid.uuid4().hex[:8]}"
    namespace = f"{worker_prefix}{tag}"
    e = Env(kube_cluster, namespace, tag)
    kube_cluster.kubectl("create", "namespace", namespace)
    e.kubectl(
        "create", "secret", "generic", "pg-admin", "--from-literal=username=postgres", "--from-literal=password=x"
    )
    e.kubectl(
        "create", "secret", "generic", "redis-admin", "--from-literal=username=default", "--from-literal=password="
    )
    yield e
    # Leave nothing behind on the shared servers, whatever the test did.
    e.kubectl("delete", "pse", "--all", "--wait=false", check=False)
    _drop_everything(tag)


def _drop_everything(tag: str) -> None:
    with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
        for (db,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{tag}\\_%",)).fetchall():
            conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
        for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{tag}\\_%",)).fetchall():
            conn.execute(f'DROP ROLE "{role}"')
    r = redis_sync.Redis(port=REDIS_PORT, decode_responses=True)
    for user in r.acl_users():
        if user.startswith(f"{tag}."):
            r.acl_deluser(user)
    asyncio.run(_delete_topics(tag))


async def _kafka_topics() -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names)
        return {t["topic"]: len(t["partitions"]) for t in described}
    finally:
        await admin.close()


async def _delete_topics(tag: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(f"{tag}.")]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def kafka_topics() -> dict[str, int]:
    return asyncio.run(_kafka_topics())


def pg_state(tag: str) -> tuple[set[str], set[str]]:
    with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
        dbs = {r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{tag}\\_%",))}
        roles = {r[0] for r in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{tag}\\_%",))}
    return dbs, roles


def acl_users(tag: str) -> set[str]:
    return {u for u in redis_sync.Redis(port=REDIS_PORT, decode_responses=True).acl_users() if u.startswith(f"{tag}.")}


def test_apply_becomes_ready_with_everything_provisioned(env: Env) -> None:
    started = time.monotonic()
    env.apply(env.manifest())
    body = env.wait_until(env.ready, "Ready")
    print(f"Ready after {time.monotonic() - started:.1f}s")
    types = {c["type"] for c in body["status"]["conditions"]}
    assert types >= {
        "Ready",
        "PostgresReady",
        "RedisReady",
        "KafkaTopicsReady",
        "SecretsReady",
        "DashboardsReady",
        "AlertsReady",
    }
    assert body["status"]["phase"] == "Ready"
    assert "pinstack.io/finalizer" in body["metadata"]["finalizers"]

    tag = env.tag
    dbs, roles = pg_state(tag)
    expected = {f"{tag}_users", f"{tag}_auth", f"{tag}_relations"}
    assert dbs == expected and roles == expected
    assert acl_users(tag) == {f"{tag}.{s}" for s in SERVICES}
    topics = kafka_topics()
    assert topics[f"{tag}.user-events"] == 2 and topics[f"{tag}.relation-events"] == 3

    # The Secret contract, and the credentials really work.
    users = env.secret("users")
    assert set(users) == {
        "DATABASE_URL",
        "REDIS_URL",
        "REDIS_KEY_PREFIX",
        "KAFKA_BOOTSTRAP_SERVERS",
        "KAFKA_TOPIC_PREFIX",
    }
    with psycopg.connect(users["DATABASE_URL"]) as conn:
        conn.execute("CREATE TABLE t (id int)")
    r = redis_sync.Redis.from_url(users["REDIS_URL"])
    r.set(f"{users['REDIS_KEY_PREFIX']}k", "v")
    with pytest.raises(redis_sync.exceptions.NoPermissionError):
        r.set(f"{tag}.auth:k", "v")  # another service's keys
    auth = env.secret("auth")
    assert auth["JWT_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----")
    assert "DATABASE_URL" not in env.secret("gateway")

    dashboards = json.loads(env.kubectl("get", "cm", "-l", "grafana_dashboard=1", "-o", "json").stdout)["items"]
    assert {d["metadata"]["name"] for d in dashboards} == {
        f"env-dashboard-{k}" for k in ("overview", "red", "kafka", "database", "cache", "operator")
    }
    crd = env.cluster.kubectl("get", "crd", "prometheusrules.monitoring.coreos.com", check=False)
    if crd.returncode == 0:  # the Prometheus Operator's CRD is installed: a PrometheusRule
        rule = env.get("prometheusrule", "env-alerts")
        alerts = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    else:  # otherwise the same rules as a ConfigMap
        alerts = {
            a for a in ("PinstackHighErrorRate",) if a in env.get("cm", "env-alerts")["data"]["pinstack.rules.yaml"]
        }
    assert "PinstackHighErrorRate" in alerts


def test_reconciling_an_unchanged_resource_writes_nothing(env: Env, operator: KopfRunner) -> None:
    from pinstack_operator.builders.spec import parse_spec
    from pinstack_operator.reconcile import reconcile

    env.apply(env.manifest())
    body = env.wait_until(env.ready, "Ready")
    time.sleep(2)  # let the first timer run settle
    body = env.get("pse", env.name)
    versions = {
        o["metadata"]["name"]: o["metadata"]["resourceVersion"]
        for o in json.loads(env.kubectl("get", "secret,cm", "-o", "json").stdout)["items"]
    }
    started = time.monotonic()
    outcome = asyncio.run(reconcile(parse_spec(env.name, env.namespace, body["spec"]), body))
    print(f"unchanged reconcile: {outcome.writes} writes in {time.monotonic() - started:.2f}s")
    assert outcome.ready and outcome.writes == 0, outcome.changes
    time.sleep(4)  # at least one timer cycle of the running operator
    after = {
        o["metadata"]["name"]: o["metadata"]["resourceVersion"]
        for o in json.loads(env.kubectl("get", "secret,cm", "-o", "json").stdout)["items"]
    }
    assert after == versions
    assert env.get("pse", env.name)["metadata"]["resourceVersion"] == body["metadata"]["resourceVersion"]


def test_drift_is_corrected_and_reported(env: Env) -> None:
    env.apply(env.manifest())
    env.wait_until(env.ready, "Ready")
    tag = env.tag
    asyncio.run(_delete_one_topic(f"{tag}.user-events"))
    with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE "{tag}_auth" WITH (FORCE)')
        conn.execute(f'DROP ROLE "{tag}_auth"')
    redis_sync.Redis(port=REDIS_PORT).acl_deluser(f"{tag}.users")
    env.kubectl(
        "patch", "cm", "env-dashboard-red", "--type=merge", "-p", json.dumps({"data": {"pinstack-red.json": "{}"}})
    )

    def corrected() -> bool:
        dbs, roles = pg_state(tag)
        cm = env.get("cm", "env-dashboard-red")["data"]["pinstack-red.json"]
        return (
            f"{tag}_auth" in dbs
            and f"{tag}_auth" in roles
            and f"{tag}.users" in acl_users(tag)
            and kafka_topics().get(f"{tag}.user-events") == 2
            and cm != "{}"
        )

    env.wait_until(corrected, "drift corrected", timeout=90)
    # The old Secret's password is still the one the recreated role has.
    with psycopg.connect(env.secret("auth")["DATABASE_URL"]):
        pass
    events = env.wait_until(
        lambda: [
            e
            for e in json.loads(env.kubectl("get", "events", "-o", "json").stdout)["items"]
            if e["reason"] == "DriftCorrected"
        ],
        "DriftCorrected events",
    )
    assert any("postgres" in e["message"] for e in events)


async def _delete_one_topic(name: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


def test_partitions_grow_on_update(env: Env) -> None:
    env.apply(env.manifest(partitions=2))
    env.wait_until(env.ready, "Ready")
    env.apply(env.manifest(partitions=4))
    env.wait_until(env.ready, "Ready after the update")
    env.wait_until(lambda: kafka_topics().get(f"{env.tag}.user-events") == 4, "4 partitions")
    done = env.kubectl("apply", "-f", "-", input=yaml.safe_dump(env.manifest(partitions=1)), check=False)
    assert done.returncode != 0 and "partitions cannot decrease" in done.stderr


@pytest.mark.parametrize("policy", ["Retain", "Delete"])
def test_delete_honours_the_deletion_policy(env: Env, policy: str) -> None:
    env.apply(env.manifest(policy=policy))
    env.wait_until(env.ready, "Ready")
    env.kubectl("delete", "pse", env.name, "--wait=false")
    env.wait_until(lambda: env.kubectl("get", "pse", env.name, check=False).returncode != 0, "the resource gone")
    assert env.kubectl("get", "secret", "env-users-connection", check=False).returncode != 0
    dbs, roles = pg_state(env.tag)
    users, topics = acl_users(env.tag), {t for t in kafka_topics() if t.startswith(f"{env.tag}.")}
    if policy == "Retain":
        assert len(dbs) == 3 and len(roles) == 3 and len(users) == 4 and len(topics) == 2
    else:
        assert dbs == set() and roles == set() and users == set()
        env.wait_until(lambda: not [t for t in kafka_topics() if t.startswith(f"{env.tag}.")], "topics deleted")


@pytest.mark.parametrize(
    "sample", sorted((ROOT / "manifests" / "samples" / "invalid").glob("*.yaml")), ids=lambda p: p.stem
)
def test_invalid_resources_are_rejected_with_a_clear_message(env: Env, sample: Path) -> None:
    expected = re.search(r"^# expected error: (.+)$", sample.read_text(), re.M)
    assert expected, f"{sample.name} names no expected error"
    done = env.kubectl("apply", "-f", str(sample), check=False)
    assert done.returncode != 0
    assert expected[1].strip() in done.stderr, done.stderr
