"""What the operator's cluster tests share: an environment in its own namespace on the real control
plane, the state of the real PostgreSQL, Redis and Kafka it provisions, and the operator as its
own process (as its Deployment runs it)."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import redis as redis_sync
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from kopf.testing import KopfRunner

from pinstack_testing import KAFKA, PG_ADMIN_DSN, REDIS_URL
from pinstack_testing.cluster import KubeCluster

ROOT = Path(__file__).resolve().parents[2]
# The servers `make infra` started (ports come from the environment: CI uses its own).
PG_PORT = int(urlsplit(PG_ADMIN_DSN).port or 5432)
PG = {"host": "127.0.0.1", "port": PG_PORT, "user": "postgres", "dbname": "postgres", "autocommit": True}
REDIS_PORT = int(urlsplit(REDIS_URL).port or 6379)
SERVICES = ["users", "auth", "relations", "gateway"]


class Env:
    def __init__(self, cluster: KubeCluster, namespace: str, tag: str, runner: KopfRunner | None = None) -> None:
        self.cluster, self.namespace, self.tag, self.name = cluster, namespace, tag, "env"
        self.runner = runner
        self.log: Path | None = None

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

    def wait_until(self, check: Callable[[], Any], what: str, timeout: float = 120, interval: float = 0.5) -> Any:
        return wait_until(check, what, timeout, interval, explain=self.diagnostics)

    def diagnostics(self) -> str:
        """What a timeout needs to be understood: the resource (Kopf's progress annotations hold a
        handler's retries and errors) and the operator's last log lines."""
        got = self.kubectl("get", "pse", "-o", "yaml", check=False)
        recent = getattr(self.runner, "recent", None)
        log = recent.tail() if recent is not None else ""
        if self.log is not None and self.log.exists():  # an operator process's own log
            log += "\n".join(self.log.read_text(errors="replace").splitlines()[-80:])
        return f"--- resources:\n{got.stdout[-4000:]}{got.stderr[-500:]}\n--- operator log:\n{log}"

    def ready(self) -> dict[str, Any]:
        body = self.get("pse", self.name)
        conds = {c["type"]: c for c in body.get("status", {}).get("conditions", [])}
        ok = conds.get("Ready", {}).get("status") == "True"
        return body if ok and body["status"]["observedGeneration"] == body["metadata"]["generation"] else {}

    def secret(self, service: str) -> dict[str, str]:
        data = self.get("secret", f"{self.name}-{service}-connection")["data"]
        return {k: base64.b64decode(v).decode() for k, v in data.items()}


def new_env(cluster: KubeCluster, namespace: str, tag: str, runner: KopfRunner | None) -> Env:
    e = Env(cluster, namespace, tag, runner)
    cluster.kubectl("create", "namespace", namespace)
    e.kubectl(
        "create", "secret", "generic", "pg-admin", "--from-literal=username=postgres", "--from-literal=password=x"
    )
    e.kubectl(
        "create", "secret", "generic", "redis-admin", "--from-literal=username=default", "--from-literal=password="
    )
    return e


def drop_everything(tag: str) -> None:
    drop_databases_and_roles(f"{tag}\\_%")
    r = redis_sync.Redis(port=REDIS_PORT, decode_responses=True)
    for user in r.acl_users():
        if user.startswith(f"{tag}."):
            r.acl_deluser(user)
    for marker in r.scan_iter(f"pinstack-operator:owner:{tag}.*"):
        r.delete(marker)
    asyncio.run(_delete_topics(tag))


def drop_databases_and_roles(like: str) -> None:
    """DROP DATABASE cannot share a transaction with DROP ROLE: a drift pass of a running operator
    may re-create the database in between, so a round that races it is repeated."""
    with psycopg.connect(**PG) as conn:  # type: ignore[arg-type]
        for _ in range(3):
            try:
                for (db,) in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (like,)).fetchall():
                    conn.execute(f'DROP DATABASE "{db}" WITH (FORCE)')
                for (role,) in conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (like,)).fetchall():
                    conn.execute(f'DROP ROLE "{role}"')
                break
            except psycopg.errors.DependentObjectsStillExist:
                time.sleep(1)


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


def operator_process(
    cluster: KubeCluster, namespace: str, log: Path, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """The operator as its Deployment runs it: `python -m pinstack_operator`, its own process;
    `args`: more Kopf options, `env`: more environment (another KUBECONFIG, for one)."""
    environ = {**cluster.env, "METRICS_PORT": "0", "DRIFT_INTERVAL_SECONDS": "3", "DRIFT_IDLE_SECONDS": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "pinstack_operator", "--standalone", f"--namespace={namespace}", *args],
            env={**environ, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def wait_until(
    check: Callable[[], Any],
    what: str,
    timeout: float = 120,
    interval: float = 0.5,
    explain: Callable[[], str] = str,
) -> Any:
    """`check()` once it is truthy; a timeout names what was waited for, the last answer and what
    `explain()` adds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # not there yet
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}: {last}\n{explain()}")
