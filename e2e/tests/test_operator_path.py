"""The operator path, end to end: CRDs installed, the operator running as its own process, one
PinstackEnvironment pointing at the local PostgreSQL, Redis and Kafka, and the users service
started with exactly the connection Secret the operator wrote, serving real requests.

Needs the control plane (`make cluster`, KUBECONFIG) and the local infra (`make infra`).
Everything it creates goes away at the end: the operator process, the namespace's objects, and
the databases, roles, ACL users and topics (deletionPolicy Delete).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest
import yaml

from pinstack_e2e.processes import free_port, stop_process
from pinstack_e2e.wait import wait_for

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
PG_DSN = os.environ.get("PINSTACK_PG_DSN", "postgresql://postgres@127.0.0.1:55432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")


def _kubectl_binary() -> str:
    found = shutil.which("kubectl")
    if found:
        return found
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "cluster.py"), "env", "--json"], capture_output=True, text=True
    )
    if done.returncode == 0:
        path = json.loads(done.stdout.strip().splitlines()[-1]).get("kubectl", "")
        if path and Path(path).exists():
            return str(path)
    _unavailable('kubectl not found: run `make cluster` and `eval "$(python3 scripts/cluster.py env)"`')


def _unavailable(reason: str) -> NoReturn:
    """Skip, unless CI demands the cluster tier (PINSTACK_REQUIRE_CLUSTER=1): then fail."""
    if os.environ.get("PINSTACK_REQUIRE_CLUSTER") == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


class Kube:
    def __init__(self) -> None:
        if not os.environ.get("KUBECONFIG"):
            _unavailable('KUBECONFIG is not set: `make cluster`, then `eval "$(python3 scripts/cluster.py env)"`')
        self.binary = _kubectl_binary()
        done = self.run("get", "--raw", "/readyz", check=False)
        if done.returncode != 0:
            _unavailable(f"the control plane does not answer (kubectl get --raw /readyz): {done.stderr.strip()[:300]}")

    def run(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} exited {done.returncode}: {done.stderr[-2000:]}")
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "-o", "json").stdout)


def _infra_problem() -> str | None:
    try:
        with psycopg.connect(PG_DSN, connect_timeout=3):
            pass
    except psycopg.Error as e:
        return f"PostgreSQL at {PG_DSN}: {e}"
    for name, url in (("Redis", REDIS_URL), ("Kafka", f"kafka://{KAFKA.split(',')[0]}")):
        parts = urlsplit(url)
        try:
            socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 0), timeout=3).close()
        except OSError as e:
            return f"{name} at {url}: {e}"
    return None


@pytest.fixture
def kube() -> Kube:
    problem = _infra_problem()
    if problem:
        _unavailable(f"the local infra is not running ({problem}): `make infra`")
    return Kube()


@pytest.fixture
def namespace(kube: Kube) -> Iterator[str]:
    name = f"e2e-operator-{uuid.uuid4().hex[:8]}"
    kube.run("create", "namespace", name)
    yield name
    kube.run("delete", "namespace", name, "--wait=false", check=False)


def test_operator_provisions_what_the_users_service_runs_on(kube: Kube, namespace: str, tmp_path: Path) -> None:
    kube.run("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "manifests" / "crd"))
    kube.run("wait", "--for=condition=Established", "crd/pinstackenvironments.pinstack.io")
    pg, redis = urlsplit(PG_DSN), urlsplit(REDIS_URL)
    kube.run(
        "-n", namespace, "create", "secret", "generic", "pg-admin",
        f"--from-literal=username={pg.username or 'postgres'}", f"--from-literal=password={pg.password or ''}",
    )  # fmt: skip
    kube.run(
        "-n", namespace, "create", "secret", "generic", "redis-admin",
        f"--from-literal=username={redis.username or 'default'}", f"--from-literal=password={redis.password or ''}",
    )  # fmt: skip

    tag = f"e2e{uuid.uuid4().hex[:8]}"
    environment = {
        "apiVersion": "pinstack.io/v1alpha1",
        "kind": "PinstackEnvironment",
        "metadata": {"name": "pinstack", "namespace": namespace},
        "spec": {
            "deletionPolicy": "Delete",
            "services": ["users"],
            "postgres": {
                "host": pg.hostname or "127.0.0.1",
                "port": pg.port or 5432,
                "sslMode": "disable",
                "databasePrefix": f"{tag}_",
                "adminSecretRef": {"name": "pg-admin"},
            },
            "redis": {
                "host": redis.hostname or "127.0.0.1",
                "port": redis.port or 6379,
                "keyPrefix": f"{tag}.",
                "adminSecretRef": {"name": "redis-admin"},
            },
            "kafka": {"bootstrapServers": KAFKA, "topicPrefix": f"{tag}.", "topicDefaults": {"partitions": 1}},
            "dashboards": {"enabled": False},
            "alerts": {"enabled": False},
        },
    }

    operator_log = tmp_path / "operator.log"
    operator_env = {**os.environ, "METRICS_PORT": str(free_port()), "PYTHONUNBUFFERED": "1"}
    with operator_log.open("wb") as out:
        operator = subprocess.Popen(
            [sys.executable, "-m", "pinstack_operator", "--standalone", f"--namespace={namespace}"],
            env=operator_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    service: subprocess.Popen[bytes] | None = None
    service_log = tmp_path / "users.log"

    def logs() -> str:
        text = [f"--- {p.name}:\n{p.read_text(errors='replace')[-3000:]}" for p in (operator_log, service_log)]
        got = kube.run("-n", namespace, "get", "pse", "-o", "yaml", check=False).stdout[-3000:]
        return "\n".join([*text, f"--- resource:\n{got}"])

    try:
        kube.run("-n", namespace, "apply", "-f", "-", input=yaml.safe_dump(environment))

        def ready() -> bool:
            conds = kube.json("-n", namespace, "get", "pse", "pinstack").get("status", {}).get("conditions", [])
            return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)

        wait_for(ready, "the environment to be Ready", timeout=180, diagnose=logs)
        secret = kube.json("-n", namespace, "get", "secret", "pinstack-users-connection")
        connection = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
        assert set(connection) == {
            "DATABASE_URL",
            "REDIS_URL",
            "REDIS_KEY_PREFIX",
            "KAFKA_BOOTSTRAP_SERVERS",
            "KAFKA_TOPIC_PREFIX",
        }

        # The service the way the stack starts it (scripts/stack.py), with exactly those settings.
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "ENVIRONMENT": "development",
            "SERVICE_NAME": "users",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **connection,
        }
        migrate = subprocess.run(
            [sys.executable, "-m", "pinstack_kit.migrate", str(REPO / "services" / "users" / "migrations")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert migrate.returncode == 0, migrate.stdout + migrate.stderr
        port = free_port()
        with service_log.open("wb") as out:
            service = subprocess.Popen(
                [
                    sys.executable, "-m", "uvicorn", "--factory", "pinstack_users.main:create_app",
                    "--host", "127.0.0.1", "--port", str(port), "--no-access-log",
                ],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"

        def readyz() -> httpx.Response | None:
            response = httpx.get(f"{base}/readyz", timeout=5)
            return response if response.status_code == 200 else None

        wait_for(readyz, "the users service's /readyz", timeout=90, diagnose=logs)
        name = f"op{uuid.uuid4().hex[:10]}"
        created = httpx.post(
            f"{base}/users",
            json={"username": name, "email": f"{name}@example.com", "password": "correct horse"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        user = created.json()["data"]
        fetched = httpx.get(f"{base}/users/{user['id']}", timeout=10)
        assert fetched.status_code == 200, fetched.text
        assert fetched.json()["data"]["username"] == name
        # It really is the provisioned database, reached with the provisioned role.
        with psycopg.connect(connection["DATABASE_URL"]) as conn:
            row = conn.execute("SELECT current_user, current_database()").fetchone()
        assert row == (f"{tag}_users", f"{tag}_users")
    finally:
        if service is not None:
            stop_process(service, grace=30)
        kube.run("-n", namespace, "delete", "pse", "pinstack", "--wait=false", check=False)

        def gone() -> bool:
            return kube.run("-n", namespace, "get", "pse", "pinstack", check=False).returncode != 0

        try:
            wait_for(gone, "the environment's deletion (deletionPolicy Delete)", timeout=90, diagnose=logs)
        finally:
            stop_process(operator, grace=30)

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"{tag}\\_%",)).fetchall()
        roles = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE %s", (f"{tag}\\_%",)).fetchall()
    assert left == [] and roles == [], (left, roles)
