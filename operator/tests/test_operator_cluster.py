"""The operator in-process (kopf.testing.KopfRunner) against the real control plane (make cluster)
and the real local PostgreSQL, Redis and Kafka. Every test uses its own namespace and name prefix.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import json
import logging
import os
import re
import socket
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import redis as redis_sync
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from kopf.testing import KopfRunner
from operator_support import (
    PG,
    PG_PORT,
    REDIS_PORT,
    ROOT,
    SERVICES,
    Env,
    acl_users,
    drop_databases_and_roles,
    drop_everything,
    kafka_topics,
    new_env,
    pg_state,
)

from pinstack_testing import KAFKA
from pinstack_testing.cluster import KubeCluster

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]


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
    kube_cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "manifests" / "crd"))
    kube_cluster.kubectl("wait", "--for=condition=Established", "crd/pinstackenvironments.pinstack.io")
    args = ["run", "--standalone", f"--namespace={worker_prefix}*", "-m", "pinstack_operator.handlers"]
    recent = _RecentLog()
    kopf_logger = logging.getLogger("kopf")
    kopf_logger.addHandler(recent)
    kopf_logger.setLevel(logging.DEBUG)
    try:
        with KopfRunner(args, timeout=60) as runner:
            runner.recent = recent  # type: ignore[attr-defined]
            yield runner
    finally:
        kopf_logger.removeHandler(recent)
    assert runner.exception is None or isinstance(runner.exception, SystemExit), runner.output[-3000:]


class _RecentLog(logging.Handler):
    """Kopf's last log lines (DEBUG included) while it runs: KopfRunner.output exists only after
    the operator stopped, too late to explain a timeout."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: collections.deque[str] = collections.deque(maxlen=300)

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.created:.1f} {record.name} {record.levelname} {record.getMessage()}"[:500])

    def tail(self, keep: int = 80) -> str:
        return "\n".join(list(self.lines)[-keep:])


@pytest.fixture
def env(kube_cluster: KubeCluster, operator: KopfRunner, worker_prefix: str) -> Iterator[Env]:
    tag = f"t{uuid.uuid4().hex[:8]}"
    e = new_env(kube_cluster, f"{worker_prefix}{tag}", tag, operator)
    yield e
    # Leave nothing behind on the shared servers, whatever the test did. Wait for the finalizer
    # first: a drift pass that began before the delete may still be creating a database.
    e.kubectl("delete", "pse", "--all", "--timeout=60s", check=False)
    drop_everything(tag)


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
    # The gateway keeps rate limits and idempotency keys in Redis (Lua scripts): its own user.
    gateway = env.secret("gateway")
    assert set(gateway) == {"REDIS_URL", "REDIS_KEY_PREFIX", "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_TOPIC_PREFIX"}
    assert gateway["REDIS_KEY_PREFIX"] == f"{tag}.gateway:"
    g = redis_sync.Redis.from_url(gateway["REDIS_URL"])
    window = g.register_script("local n = redis.call('INCR', KEYS[1]) redis.call('PEXPIRE', KEYS[1], 1000) return n")
    assert window(keys=[f"{tag}.gateway:rl:k"]) == 1
    assert g.set(f"{tag}.gateway:idem:k", "v", nx=True, ex=60)
    with pytest.raises(redis_sync.exceptions.NoPermissionError):
        g.set(f"{tag}.users:k", "v")

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


def test_unreachable_postgres_is_a_reconcile_error_and_no_secret_is_written(env: Env) -> None:
    """Credentials of a database that was never made would start pods that fail far from the cause."""
    manifest = env.manifest()
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        manifest["spec"]["postgres"]["port"] = probe.getsockname()[1]
    env.apply(manifest)

    def reported() -> dict[str, dict[str, Any]]:
        conds = {c["type"]: c for c in env.get("pse", env.name).get("status", {}).get("conditions", [])}
        return conds if conds.get("Ready", {}).get("reason") == "ReconcileError" else {}

    conds = env.wait_until(reported, "Ready=False, reason ReconcileError")
    assert conds["PostgresReady"]["status"] == "False" and conds["PostgresReady"]["reason"] == "Failed"
    assert conds["PostgresReady"]["message"] in conds["Ready"]["message"]
    assert (conds["SecretsReady"]["status"], conds["SecretsReady"]["reason"]) == ("False", "Waiting")
    assert "PostgresReady" in conds["SecretsReady"]["message"]
    assert conds["RedisReady"]["status"] == "True"  # what works is still done
    assert env.kubectl("get", "secret", "env-users-connection", check=False).returncode != 0


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
    drop_databases_and_roles(f"{tag}\\_auth")
    redis_sync.Redis(port=REDIS_PORT).acl_deluser(f"{tag}.users")
    env.kubectl(
        "patch", "cm", "env-dashboard-red", "--type=merge", "-p", json.dumps({"data": {"pinstack-red.json": "{}"}})
    )

    def corrected() -> bool:
        dbs, roles = pg_state(tag)
        cm = env.get("cm", "env-dashboard-red")["data"]["pinstack-red.json"]
        partitions = kafka_topics().get(f"{tag}.user-events")
        missing = [
            what
            for what, ok in (
                ("database", f"{tag}_auth" in dbs),
                ("role", f"{tag}_auth" in roles),
                ("ACL user", f"{tag}.users" in acl_users(tag)),
                (f"topic (partitions {partitions})", partitions == 2),
                ("dashboard", cm != "{}"),
            )
            if not ok
        ]
        if missing:  # raised, so a timeout names what was never corrected
            raise AssertionError(f"not corrected yet: {missing}")
        return True

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


def test_the_readme_sample_for_the_local_stack_becomes_ready_and_leaves_nothing(env: Env) -> None:
    """manifests/samples/environment-local.yaml as the README applies it, with this run's ports
    and prefixes (the sample's are those of `make up`)."""
    body = yaml.safe_load((ROOT / "manifests" / "samples" / "environment-local.yaml").read_text())
    spec = body["spec"]
    assert (spec["postgres"]["port"], spec["redis"]["port"], spec["kafka"]["bootstrapServers"]) == (
        55432,
        56379,
        "127.0.0.1:59092",
    ), "the sample must point at the default ports of `make up`"
    spec["postgres"].update(port=PG_PORT, databasePrefix=f"{env.tag}_", adminSecretRef={"name": "pg-admin"})
    spec["redis"].update(port=REDIS_PORT, keyPrefix=f"{env.tag}.", adminSecretRef={"name": "redis-admin"})
    spec["kafka"].update(bootstrapServers=KAFKA, topicPrefix=f"{env.tag}.")
    body["metadata"] = {"name": env.name, "namespace": env.namespace}
    env.apply(body)
    env.wait_until(env.ready, "Ready")
    assert len(pg_state(env.tag)[0]) == 7 and len(acl_users(env.tag)) == 8
    env.kubectl("delete", "pse", env.name, "--timeout=60s")
    assert pg_state(env.tag) == (set(), set()) and acl_users(env.tag) == set()  # deletionPolicy Delete


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


def test_managed_mode_runs_its_own_servers_and_waits_for_them(env: Env) -> None:
    """Managed mode on the real API server. There is no kubelet or controller manager here, so
    no pod ever runs: the test stops at what the operator can be seen doing (the servers' objects,
    waiting, moving on once their StatefulSets report ready pods, clean-up); that the images come
    up and serve is not tested here."""
    env.apply(
        {
            "apiVersion": "pinstack.io/v1alpha1",
            "kind": "PinstackEnvironment",
            "metadata": {"name": env.name, "namespace": env.namespace},
            "spec": {"mode": "Managed", "deletionPolicy": "Delete", "services": ["users", "gateway"]},
        }
    )

    def starting() -> dict[str, Any]:
        conds = {c["type"]: c for c in env.get("pse", env.name).get("status", {}).get("conditions", [])}
        return conds if conds.get("ManagedServersReady", {}).get("reason") == "Starting" else {}

    conds = env.wait_until(starting, "ManagedServersReady=False, reason Starting")
    assert "postgres, redis, kafka" in conds["ManagedServersReady"]["message"]
    assert conds["PostgresReady"]["reason"] == "Waiting" and conds["Ready"]["status"] == "False"
    assert env.get("pse", env.name)["status"]["phase"] == "Provisioning"
    uid = env.get("pse", env.name)["metadata"]["uid"]
    for server in ("postgres", "redis", "kafka"):
        sts, svc = env.get("statefulset", f"env-{server}"), env.get("service", f"env-{server}")
        assert [o["uid"] for o in sts["metadata"]["ownerReferences"]] == [uid]
        assert [o["uid"] for o in svc["metadata"]["ownerReferences"]] == [uid]
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    admin = env.get("secret", "env-managed-admin")
    passwords = {k: base64.b64decode(v).decode() for k, v in admin["data"].items()}
    assert len(passwords["postgres-password"]) >= 24 and len(passwords["redis-password"]) >= 24

    # Waiting writes nothing: the objects are in line, the passwords kept.
    versions = {
        (kind, name): env.get(kind, name)["metadata"]["resourceVersion"]
        for kind, name in (("statefulset", "env-kafka"), ("service", "env-kafka"), ("secret", "env-managed-admin"))
    }
    time.sleep(5)  # two passes of the waiting timer (RETRY_DELAY_SECONDS=2)
    for (kind, name), version in versions.items():
        assert env.get(kind, name)["metadata"]["resourceVersion"] == version, (kind, name)

    # Once every StatefulSet reports a ready pod, provisioning starts against the in-cluster
    # names, which do not resolve outside a cluster: a clear failure, not a silent wait.
    for server in ("postgres", "redis", "kafka"):
        status = json.dumps({"status": {"replicas": 1, "readyReplicas": 1, "availableReplicas": 1}})
        env.kubectl("patch", "statefulset", f"env-{server}", "--subresource=status", "--type=merge", "-p", status)

    def provisioning() -> dict[str, Any]:
        conds = {c["type"]: c for c in env.get("pse", env.name).get("status", {}).get("conditions", [])}
        return conds if conds.get("PostgresReady", {}).get("reason") == "Failed" else {}

    conds = env.wait_until(provisioning, "PostgresReady=False, reason Failed", timeout=60)
    assert conds["ManagedServersReady"]["status"] == "True"
    assert f"env-postgres.{env.namespace}.svc" in conds["PostgresReady"]["message"]

    env.kubectl("delete", "pse", env.name, "--timeout=60s")
    for kind, name in (("statefulset", "env-postgres"), ("service", "env-kafka"), ("secret", "env-managed-admin")):
        assert env.kubectl("get", kind, name, check=False).returncode != 0, (kind, name)


@pytest.mark.parametrize(
    "sample", sorted((ROOT / "manifests" / "samples" / "invalid").glob("*.yaml")), ids=lambda p: p.stem
)
def test_invalid_resources_are_rejected_with_a_clear_message(env: Env, sample: Path) -> None:
    expected = re.search(r"^# expected error: (.+)$", sample.read_text(), re.M)
    assert expected, f"{sample.name} names no expected error"
    done = env.kubectl("apply", "-f", str(sample), check=False)
    assert done.returncode != 0
    assert expected[1].strip() in done.stderr, done.stderr


# ------------------------------------------------------------------ failures, restarts, pause


def test_a_failed_pass_is_reported_and_retried_within_seconds(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """An error that escapes a reconciliation is written to the status at once and retried after
    RETRY_DELAY_SECONDS, not after Kopf's default 60 s backoff with an empty status (the cause of
    resources that "were never picked up" under load: the API server's transient errors)."""
    import pinstack_operator.handlers as handlers

    real = handlers.reconcile
    calls = {"n": 0}

    async def failing_once(spec: Any, *args: Any, **kwargs: Any) -> Any:
        if spec.namespace == env.namespace:  # other tests' resources may still be going away
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("the API server answered 429 Too Many Requests")
        return await real(spec, *args, **kwargs)

    monkeypatch.setattr(handlers, "reconcile", failing_once)
    env.apply(env.manifest())

    def error_reported() -> dict[str, Any] | None:
        conds = {c["type"]: c for c in env.get("pse", env.name).get("status", {}).get("conditions", [])}
        ready = conds.get("Ready", {})
        return ready if ready.get("reason") == "ReconcileError" else None

    started = time.monotonic()
    ready = env.wait_until(error_reported, "the error in the status", timeout=30)
    assert "429 Too Many Requests" in ready["message"]
    env.wait_until(env.ready, "Ready after the retry", timeout=30)
    print(f"Ready {time.monotonic() - started:.1f}s after the failed pass")
    assert calls["n"] >= 2


def _annotate(env: Env, *pairs: str) -> None:
    env.kubectl("annotate", "pse", env.name, "--overwrite", *pairs)


def _condition(env: Env, kind: str) -> dict[str, Any]:
    conds = {c["type"]: c for c in env.get("pse", env.name).get("status", {}).get("conditions", [])}
    return conds.get(kind, {})


def test_paused_environment_is_left_alone_until_resumed(env: Env) -> None:
    env.apply(env.manifest(partitions=2))
    env.wait_until(env.ready, "Ready")
    _annotate(env, "pinstack.io/paused=true")
    env.wait_until(lambda: env.get("pse", env.name)["status"]["phase"] == "Paused", "phase Paused")
    assert _condition(env, "Paused")["status"] == "True"
    row = env.kubectl("get", "pse", env.name, "--no-headers").stdout.split()
    assert row[2] == "Paused"

    with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
        conn.execute(f'DROP DATABASE "{env.tag}_auth" WITH (FORCE)')
    env.apply(env.manifest(partitions=3))
    time.sleep(8)  # two drift-timer cycles and the update: none of them may write
    assert f"{env.tag}_auth" not in pg_state(env.tag)[0]
    assert kafka_topics()[f"{env.tag}.user-events"] == 2
    assert env.get("pse", env.name)["status"]["phase"] == "Paused"

    body = env.get("pse", env.name)
    assert body["status"]["observedGeneration"] < body["metadata"]["generation"]  # the update waits

    env.kubectl("annotate", "pse", env.name, "pinstack.io/paused-")
    env.wait_until(lambda: env.ready() and env.get("pse", env.name)["status"]["phase"] == "Ready", "resumed")
    assert not _condition(env, "Paused")
    assert f"{env.tag}_auth" in pg_state(env.tag)[0]
    env.wait_until(lambda: kafka_topics()[f"{env.tag}.user-events"] == 3, "the update applied after resuming")


def test_credentials_rotate_on_annotation(env: Env) -> None:
    env.apply(env.manifest())
    env.wait_until(env.ready, "Ready")
    before = {s: env.secret(s) for s in ("users", "gateway")}
    jwt = env.secret("auth")["JWT_PRIVATE_KEY"]
    _annotate(env, "pinstack.io/rotate-credentials=2026-11-21")

    def rotated() -> bool:
        status = env.get("pse", env.name)["status"]
        return status.get("credentialsRotation") == "2026-11-21" and bool(env.ready())

    env.wait_until(rotated, "credentials rotated")
    users, gateway = env.secret("users"), env.secret("gateway")
    assert users["DATABASE_URL"] != before["users"]["DATABASE_URL"]
    assert users["REDIS_URL"] != before["users"]["REDIS_URL"]
    assert gateway["REDIS_URL"] != before["gateway"]["REDIS_URL"]
    assert env.secret("auth")["JWT_PRIVATE_KEY"] == jwt  # signing keys need an overlap: not rotated here

    with psycopg.connect(users["DATABASE_URL"]):
        pass
    # The new password logs in as the role's alternate (a member of the role, acting as it); the
    # old login keeps working until the services' pods run on the new Secret (here no Deployment
    # reads it, so at the next pass), then it is switched off. The local server trusts 127.0.0.1
    # (any password logs in), so ask it what each role's password and login are.
    from pinstack_operator.steps.postgres import password_matches

    role = f"{env.tag}_users"
    assert urlsplit(users["DATABASE_URL"]).username == f"{role}_alt"
    assert urlsplit(before["users"]["DATABASE_URL"]).username == role

    def logins() -> dict[str, tuple[bool, str | None]]:
        with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
            rows = conn.execute(
                "SELECT rolname, rolcanlogin, rolpassword FROM pg_authid WHERE rolname IN (%s, %s)",
                (role, f"{role}_alt"),
            ).fetchall()
        return {name: (can, password) for name, can, password in rows}

    alternate = logins()[f"{role}_alt"]
    assert alternate[0] and password_matches(
        alternate[1], f"{role}_alt", urlsplit(users["DATABASE_URL"]).password or ""
    )
    with psycopg.connect(users["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT session_user, current_user").fetchone() == (f"{role}_alt", role)
    env.wait_until(lambda: logins()[role] == (False, None), "the old login switched off once nothing uses it")
    assert redis_sync.Redis.from_url(gateway["REDIS_URL"]).ping()

    def old_redis_password_refused() -> bool:
        try:
            redis_sync.Redis.from_url(before["gateway"]["REDIS_URL"]).ping()
        except redis_sync.exceptions.AuthenticationError:
            return True
        return False

    env.wait_until(old_redis_password_refused, "the old Redis password refused once nothing uses it")

    def events(reason: str) -> list[str]:
        found = json.loads(env.kubectl("get", "events", "-o", "json").stdout)["items"]
        return [e["message"] for e in found if e["reason"] == reason]

    # the rotation's planned last step is reported as such, not as drift
    env.wait_until(lambda: any(f"{role}" in m for m in events("CredentialsRetired")), "a CredentialsRetired Event")
    assert not [m for m in events("DriftCorrected") if "rotation done" in m]

    env.wait_until(
        lambda: [
            e
            for e in json.loads(env.kubectl("get", "events", "-o", "json").stdout)["items"]
            if e["reason"] == "CredentialsRotated"
        ],
        "a CredentialsRotated event",
        timeout=30,
    )
    # Handled once: the next passes keep the new passwords.
    time.sleep(4)
    assert env.secret("users") == users


def test_second_environment_claiming_the_same_names_is_refused(
    env: Env, kube_cluster: KubeCluster, operator: KopfRunner, worker_prefix: str
) -> None:
    env.apply(env.manifest())
    env.wait_until(env.ready, "the owner Ready")
    versions = {
        o["metadata"]["name"]: o["metadata"]["resourceVersion"]
        for o in json.loads(env.kubectl("get", "secret,cm", "-o", "json").stdout)["items"]
    }
    owner_status = env.get("pse", env.name)["metadata"]["resourceVersion"]

    # Same database prefix, Redis key prefix and topic prefix on the same servers.
    rival = new_env(kube_cluster, f"{worker_prefix}{env.tag}-rival", env.tag, operator)
    try:
        rival.apply(rival.manifest(policy="Delete"))

        def refused() -> dict[str, Any]:
            ready = _condition(rival, "Ready")
            return ready if ready.get("reason") == "Conflict" else {}

        ready = rival.wait_until(refused, "Ready=False with reason Conflict")
        assert ready["status"] == "False"
        assert f"{env.namespace}/env" in ready["message"], ready
        assert "database" in ready["message"] and "Redis" in ready["message"] and "Kafka" in ready["message"]
        assert rival.kubectl("get", "secret", "env-users-connection", check=False).returncode != 0

        # The rival goes, with deletionPolicy Delete: what the owner has stays.
        rival.kubectl("delete", "pse", rival.name, "--wait=false")
        rival.wait_until(lambda: rival.kubectl("get", "pse", rival.name, check=False).returncode != 0, "rival gone")
    finally:
        rival.kubectl("delete", "pse", "--all", "--wait=false", check=False)
    after = {
        o["metadata"]["name"]: o["metadata"]["resourceVersion"]
        for o in json.loads(env.kubectl("get", "secret,cm", "-o", "json").stdout)["items"]
    }
    assert after == versions
    assert env.get("pse", env.name)["metadata"]["resourceVersion"] == owner_status
    dbs, _ = pg_state(env.tag)
    assert dbs == {f"{env.tag}_users", f"{env.tag}_auth", f"{env.tag}_relations"}
    with psycopg.connect(env.secret("users")["DATABASE_URL"]):
        pass
    assert acl_users(env.tag) == {f"{env.tag}.{s}" for s in SERVICES}


def test_operator_dashboard_queries_name_exported_metrics(env: Env) -> None:
    from pinstack_operator import metrics

    env.apply(env.manifest())
    env.wait_until(env.ready, "Ready")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.serve(port)  # the registry the in-process operator fills
    exported = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {line.split("{")[0].split(" ")[0] for line in exported.splitlines() if line and not line.startswith("#")}
    dashboard = json.loads((ROOT / "dashboards" / "json" / "operator.json").read_text())
    named = {
        name
        for panel in dashboard["panels"]
        for target in panel.get("targets") or []
        for name in re.findall(r"\b(pinstack_operator_[a-z_]+)\b", target.get("expr", ""))
    }
    assert named, "the operator dashboard names no operator metric"
    assert named <= samples, f"named by the dashboard, not exported with samples: {sorted(named - samples)}"


def test_names_that_exist_but_were_not_made_for_the_environment_are_refused(env: Env) -> None:
    """A database and role made by hand (as `make up` makes its own) and a Redis user with the
    environment's names: Conflict, and nothing is written, not even with deletionPolicy Delete."""
    tag = env.tag
    with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
        conn.execute(f"CREATE ROLE \"{tag}_users\" LOGIN PASSWORD 'by-hand'")
        conn.execute(f'CREATE DATABASE "{tag}_users" OWNER "{tag}_users"')
    r = redis_sync.Redis(port=REDIS_PORT, decode_responses=True)
    r.acl_setuser(f"{tag}.gateway", enabled=True, passwords=["+by-hand"], keys=["by-hand:*"], commands=["+get"])

    def state() -> tuple[Any, ...]:
        with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
            row = conn.execute(
                "SELECT shobj_description(d.oid, 'pg_database'), pg_get_userbyid(d.datdba), a.rolpassword,"
                " shobj_description(a.oid, 'pg_authid') FROM pg_database d, pg_authid a"
                " WHERE d.datname = %s AND a.rolname = %s",
                (f"{tag}_users", f"{tag}_users"),
            ).fetchone()
        return row, r.acl_getuser(f"{tag}.gateway"), pg_state(tag), acl_users(tag)

    before = state()
    env.apply(env.manifest(policy="Delete"))

    def refused() -> dict[str, Any]:
        ready = _condition(env, "Ready")
        return ready if ready.get("reason") == "Conflict" else {}

    ready = env.wait_until(refused, "Ready=False with reason Conflict")
    assert f"database {tag}_users exists but was not made for {env.namespace}/env" in ready["message"]
    assert f"Redis user {tag}.gateway exists but was not made for {env.namespace}/env" in ready["message"]
    assert _condition(env, "SecretsReady")["reason"] == "Blocked"
    time.sleep(4)  # a drift pass of the running operator (3 s here): it must not write either
    assert state() == before
    assert env.kubectl("get", "secret", "env-users-connection", check=False).returncode != 0
    assert not [t for t in kafka_topics() if t.startswith(f"{tag}.")]

    env.kubectl("delete", "pse", env.name, "--timeout=60s")  # deletionPolicy Delete drops nothing it did not make
    assert state() == before
