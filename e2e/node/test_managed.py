"""The mission's headline on the real node: one Managed PinstackEnvironment, and the operator runs
PostgreSQL, Redis and Kafka as StatefulSets on local-path volumes, provisions them, and the
services (umbrella chart, release = environment name) serve through the gateway.

`scripts/deploy.py up --managed` is the same command a person runs (README, "Kubernetes"); it
applies manifests/samples/environment-managed.yaml. Then: each server's pod deleted under a load
of writes and reads (the chaos drill's ledger: nothing accepted is lost or applied twice, every
refusal is a documented 503), Retain keeping the volumes and databases for an environment applied
again, and Delete removing them. The tests run in file order; each leaves the platform serving.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pinstack_e2e.chaos_drill import Drill, DrillReport, format_report
from pinstack_e2e.client import Api, data_of
from pinstack_e2e.node import RELEASE, LogTap, Node, Platform, PodTarget, installed, journey, wait_for

REPO = Path(__file__).resolve().parents[2]
DEPLOY = [sys.executable, str(REPO / "scripts" / "deploy.py")]
SERVERS = ("postgres", "redis", "kafka")
INVALID = sorted((REPO / "manifests" / "samples" / "invalid").glob("*.yaml"))
# the install (images, operator, servers, services) and each drill take minutes, not the default 120 s
pytestmark = pytest.mark.timeout(1800)


@dataclass
class Managed:
    platform: Platform
    timings: dict[str, float]
    environment: dict[str, Any]  # the environment as applied (for applying it again)

    @property
    def node(self) -> Node:
        return self.platform.node

    @property
    def ns(self) -> str:
        return self.platform.namespace

    def environment_json(self) -> dict[str, Any]:
        return dict(self.node.json("-n", self.ns, "get", "pse", RELEASE))

    def volumes(self) -> list[dict[str, Any]]:
        return list(self.node.json("-n", self.ns, "get", "pvc")["items"])


@pytest.fixture(scope="module")
def managed(node: Node) -> Iterator[Managed]:
    namespace = f"pinstack-m{uuid.uuid4().hex[:6]}"
    with installed(node, namespace, "--managed", "--deletion-policy", "Delete") as (plat, result):
        env = node.json("-n", namespace, "get", "pse", RELEASE)
        applied = {"apiVersion": env["apiVersion"], "kind": env["kind"], "metadata": {"name": RELEASE},
                   "spec": env["spec"]}  # fmt: skip
        yield Managed(plat, {k: v for k, v in result.items() if k.endswith("_seconds")}, applied)


@pytest.fixture(scope="module")
def api(managed: Managed) -> Iterator[Api]:
    client = Api(managed.platform.gateway)
    yield client
    client.close()


def test_one_apply_runs_the_servers_and_the_platform_serves(managed: Managed, api: Api) -> None:
    t = managed.timings
    print(
        f"\n[managed] apply -> servers ready {t['servers_ready_seconds']}s -> environment Ready "
        f"{t['ready_seconds']}s -> gateway serving {t['serving_seconds']}s",
        file=sys.stderr,
    )
    assert 0 < t["servers_ready_seconds"] <= t["ready_seconds"] <= t["serving_seconds"], t
    conditions = {c["type"]: c["status"] for c in managed.environment_json()["status"]["conditions"]}
    assert all(v == "True" for v in conditions.values()), conditions
    for sts in managed.node.json("-n", managed.ns, "get", "statefulsets")["items"]:
        assert sts["status"].get("readyReplicas") == 1, sts["status"]
        pod = sts["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["containers"][0]["readinessProbe"], pod
    volumes = managed.volumes()
    assert sorted(v["metadata"]["name"] for v in volumes) == [f"data-{RELEASE}-{s}-0" for s in sorted(SERVERS)]
    assert all(v["status"]["phase"] == "Bound" and v["spec"]["storageClassName"] == "local-path" for v in volumes)
    journey(api)


@pytest.mark.parametrize("sample", INVALID, ids=lambda p: p.stem)
def test_an_invalid_environment_is_refused_by_the_api_server_with_a_clear_message(
    managed: Managed, sample: Path
) -> None:
    expected = re.search(r"^# expected error: (.+)$", sample.read_text(), re.M)
    assert expected, f"{sample.name} names no expected error"
    done = managed.node.kubectl("-n", managed.ns, "apply", "-f", str(sample), check=False)
    assert done.returncode != 0 and expected[1].strip() in done.stderr, done.stderr
    assert not managed.node.json("-n", managed.ns, "get", "pse", "--field-selector", f"metadata.name!={RELEASE}")[
        "items"
    ]


def _conditions(node: Node, ns: str, name: str) -> dict[str, str]:
    status = node.json("-n", ns, "get", "pse", name).get("status") or {}
    return {c["type"]: c["status"] for c in status.get("conditions", [])}


def test_the_operator_restarted_mid_provisioning_converges(managed: Managed) -> None:
    """A second environment on the managed servers, caught half-way: PostgreSQL and Redis
    provisioned, its Kafka address wrong, so no topics and no Secrets yet. The operator pod is
    killed (no grace), the address is mended while it is down, and the new operator pod finishes
    the work: Ready, with a connection Secret per service."""
    node, ns = managed.node, managed.ns
    other, name = f"{ns}-r", "restarted"
    admin = f"{RELEASE}-managed-admin"
    secret = node.json("-n", ns, "get", "secret", admin)
    host = f"{RELEASE}-{{}}.{ns}.svc"
    services = ["users", "posts"]

    def ref(server: str) -> dict[str, str]:
        return {"name": admin, "key": f"{server}-password", "usernameKey": f"{server}-username"}

    spec = {
        "mode": "External",
        "deletionPolicy": "Delete",
        "services": services,
        "postgres": {"host": host.format("postgres"), "port": 5432, "sslMode": "disable",
                     "databasePrefix": "restarted_", "adminSecretRef": ref("postgres")},
        "redis": {"host": host.format("redis"), "port": 6379, "keyPrefix": "restarted.",
                  "adminSecretRef": ref("redis")},
        "kafka": {"bootstrapServers": f"nowhere.{other}.svc:9092", "topicPrefix": "restarted.",
                  "topicDefaults": {"replicationFactor": 1}},
        "dashboards": {"enabled": False},
        "alerts": {"enabled": False},
    }  # fmt: skip
    environment = {"apiVersion": "pinstack.io/v1alpha1", "kind": "PinstackEnvironment",
                   "metadata": {"name": name, "namespace": other}, "spec": spec}  # fmt: skip
    copy = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": admin, "namespace": other},
            "data": secret["data"]}  # fmt: skip
    system, selector = ("-n", "pinstack-system"), ("-l", "app.kubernetes.io/component=operator")
    operator = (*system, "get", "pods", *selector)
    node.kubectl("create", "namespace", other)
    try:
        node.kubectl(
            "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": [copy, environment]})
        )
        half = wait_for(
            lambda: (
                c
                if (c := _conditions(node, other, name)).get("PostgresReady") == "True"
                and c.get("RedisReady") == "True"
                and c.get("KafkaTopicsReady") == "False"
                else None
            ),
            "PostgreSQL and Redis provisioned, Kafka failing",
            180,
            lambda: node.kubectl("-n", other, "get", "pse", name, "-o", "yaml", check=False).stdout[-3000:],
        )
        assert half is not None and half.get("SecretsReady") == "False" and half.get("Ready") == "False", half
        killed = {p["metadata"]["uid"] for p in node.json(*operator)["items"]}
        assert len(killed) == 1, killed
        node.kubectl(*system, "delete", "pods", *selector, "--grace-period=0", "--force", "--wait=true")
        mended = {"spec": {"kafka": {"bootstrapServers": f"{host.format('kafka')}:9092"}}}
        node.kubectl("-n", other, "patch", "pse", name, "--type=merge", "-p", json.dumps(mended))
        wait_for(
            lambda: _conditions(node, other, name).get("Ready") == "True",
            "the environment to be Ready after the operator's restart",
            300,
            lambda: node.kubectl(*system, "logs", *selector, "--tail=40", check=False).stdout,
        )  # fmt: skip
        running = {p["metadata"]["uid"] for p in node.json(*operator)["items"]}
        assert running and not running & killed, "the environment got Ready without the operator's restart"
        for service in services:
            data = node.json("-n", other, "get", "secret", f"{name}-{service}-connection")["data"]
            assert {"DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS"} <= set(data), sorted(data)
    finally:
        node.kubectl(
            "-n", other, "delete", "pse", name, "--ignore-not-found", "--timeout=180s", check=False, timeout=200
        )
        node.kubectl("delete", "namespace", other, "--wait=false", check=False)


def run_drill(
    target: PodTarget, part: str, seed: int, logs: Path, also_documented: frozenset[str] = frozenset()
) -> tuple[DrillReport, str]:
    """The drill of `make chaos` with one fault, `part`, under its load; the report and its text,
    which ends with the pods' log lines of every 5xx answer (their request ids; `logs` keeps the
    pods' logs, deleted pods' included)."""
    lines: list[str] = []
    # The platform keeps its production rate limits (`make chaos` turns them off): the drills'
    # registrations (setup, load and canaries), with the other tests' auth calls, all come from
    # this host's address and can pass the gateway's 60 a minute on /auth/* (a register in a
    # drill's baseline got a 429 once). A 429 is a clear refusal, never a lost write.
    documented = also_documented | {"429 too many requests"}
    drill = Drill(target, rate=6.0, max_requests=2000, seed=seed, log=lines.append, also_documented=documented)

    async def run() -> DrillReport:
        loop = asyncio.get_running_loop()
        return await drill.run([part], hold=0.0, deadline=loop.time() + 900, seed_users=6)

    with LogTap(target.node, target.ns, logs) as tap:
        report = asyncio.run(run())
    text = "\n".join(lines) + format_report(report)
    failed = {a.request_id for a in report.ledger.attempts if a.status is not None and a.status >= 500}
    if failed:
        traced = tap.lines_with(failed)
        text += f"\nlog lines of the 5xx answers ({len(traced)}, all pods' logs in {logs}):\n" + "\n".join(traced[:60])
    print(text, file=sys.stderr)
    return report, text


@pytest.mark.parametrize("server", SERVERS)
def test_a_deleted_server_pod_loses_no_accepted_write(managed: Managed, server: str, tmp_path: Path) -> None:
    """The drill of `make chaos`, with the server's pod deleted (its volume kept) as the fault."""
    # A deleted pod's address answers nothing until its endpoints change (no refusal, as from a
    # stopped local process): a service may then give up on it with its 504 before the 503.
    report, text = run_drill(
        PodTarget(managed.node, managed.ns),
        server,
        7,
        tmp_path,
        also_documented=frozenset({"504 external service timeout"}),
    )
    fault = report.faults[0]
    assert fault.recovery_seconds is not None, text
    # the other parts restarting would be a failure too, except the server's own pod
    assert report.ok, text


class Rotation(PodTarget):
    """The drill's one fault is a credential rotation: the environment annotated, the operator
    writes new passwords and Secrets and rolls every Deployment. A rolled pod is the expected
    outcome, so a part "restarted" only when a container of it did (a crash)."""

    PART = "credentials"

    def pid(self, component: str) -> object:
        if component == self.PART:
            return None
        return sum(
            c.get("restartCount", 0)
            for p in self.pods(component)
            for c in p.get("status", {}).get("containerStatuses", [])
        )

    def stop(self, component: str) -> None:
        value = uuid.uuid4().hex[:8]
        self.node.kubectl(
            "-n", self.ns, "annotate", "pse", RELEASE, f"pinstack.io/rotate-credentials={value}", "--overwrite"
        )
        wait_for(
            lambda: (
                self.node.json("-n", self.ns, "get", "pse", RELEASE).get("status", {}).get("credentialsRotation")
                == value
            ),
            f"the operator to rotate the credentials ({value})",
            180,
        )

    def up_all(self) -> None:
        """Every Deployment rolled out to pods of the new Secrets, then every workload ready."""
        for deployment in self.node.json("-n", self.ns, "get", "deployments")["items"]:
            name = deployment["metadata"]["name"]
            self.node.kubectl("-n", self.ns, "rollout", "status", f"deployment/{name}", "--timeout=300s", timeout=320)
        super().up_all()


def test_credentials_rotate_under_load_and_the_old_ones_retire_after_the_rollout(
    managed: Managed, tmp_path: Path
) -> None:
    """Rotation by annotation on the running platform, under the drill's load: new passwords and
    Secrets, every Deployment rolled, and the old login and Redis password valid until every pod
    runs on the new Secret; then they are switched off. Before that overlap 134 of 223 requests
    were refused during a 34 s rollout; with it, 0 in two runs of four and 1 (a POST answered 503
    during the pods' rollout, cause not found yet) in the other two. Allowed here: at most 1 %,
    each a documented 503 that says to retry; the goal is none."""
    target = Rotation(managed.node, managed.ns)

    def generations() -> dict[str, int]:
        items = target.node.json("-n", managed.ns, "get", "deployments")["items"]
        return {d["metadata"]["name"]: d["metadata"]["generation"] for d in items}

    before = generations()
    report, text = run_drill(target, Rotation.PART, 11, tmp_path)
    after = generations()
    assert all(after[name] > generation for name, generation in before.items()), (before, after)
    assert report.ok, text
    sent = [a for a in report.ledger.attempts if a.phase == Rotation.PART]
    refused = [a for a in report.ledger.attempts if not a.accepted]
    print(f"\n[rotation] {len(refused)} of {len(sent)} requests refused during the rollout", file=sys.stderr)
    assert all(a.outcome == "503 external service unavailable" for a in refused), text
    assert len(refused) <= max(1, len(sent) // 100), f"{len(refused)} requests refused during the rotation:\n{text}"

    def retired() -> str:
        events = managed.node.json("-n", managed.ns, "get", "events", "--field-selector", "reason=CredentialsRetired")
        return " ".join(e.get("message", "") for e in events["items"])

    def sample_retired() -> bool:
        # the sample's names, in one Event or several ("switched off the login of role a, b; ..."):
        # a service is retired once its own rollout settled, so they may come in different passes
        done = retired()
        roles = {n for m in re.findall(r"login of role ([^;]+)", done) for n in m.split(", ")}
        users = {n for m in re.findall(r"Redis ACL user ([^;]+)", done) for n in m.split(", ")}
        return "pinstack_users" in roles and "gateway" in users

    # at the operator's drift passes (every 60 s) after each rollout has settled (30 s)
    wait_for(sample_retired, "the old credentials of users and gateway switched off after the rollout", 240, retired)


def test_retain_keeps_the_data_for_the_environment_applied_again(managed: Managed, api: Api) -> None:
    node, ns = managed.node, managed.ns
    author = api.register("retained")
    post = api.create_post(author, "Kept across environments", likeable=False)
    node.kubectl("-n", ns, "patch", "pse", RELEASE, "--type=merge", "-p", '{"spec":{"deletionPolicy":"Retain"}}')
    wait_for(
        lambda: all(
            s["spec"].get("persistentVolumeClaimRetentionPolicy", {}).get("whenDeleted") == "Retain"
            for s in node.json("-n", ns, "get", "statefulsets")["items"]
        ),
        "the operator to make the servers' volumes outlive their StatefulSets",
        60,
    )
    volumes = {v["metadata"]["uid"] for v in managed.volumes()}
    node.kubectl("-n", ns, "delete", "pse", RELEASE, "--wait=true", timeout=240)
    wait_for(lambda: not node.json("-n", ns, "get", "statefulsets")["items"], "the servers to go", 120)
    assert {v["metadata"]["uid"] for v in managed.volumes()} == volumes, "a Retain environment's volumes went"
    node.kubectl("-n", ns, "get", "secret", f"{RELEASE}-managed-admin")  # the passwords that open them

    node.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(managed.environment))
    wait_for(
        lambda: any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in managed.environment_json().get("status", {}).get("conditions", [])
        ),
        "the environment applied again to be Ready on the kept volumes",
        600,
        managed.platform.describe,
    )
    assert {v["metadata"]["uid"] for v in managed.volumes()} == volumes, "new volumes instead of the kept ones"
    # the connection Secrets went with the first environment and were written anew: the operator
    # rolls the services' Deployments to read them (as after a rotation); wait for the rollouts
    Rotation(node, ns).up_all()
    assert data_of(api.get(f"/posts/{post['id']}"), 200)["title"] == "Kept across environments"
    api.login(author.username, author.password)


def test_delete_removes_the_volumes_and_the_databases(managed: Managed) -> None:
    node, ns = managed.node, managed.ns
    assert managed.environment_json()["spec"]["deletionPolicy"] == "Delete"
    names = {v["spec"]["volumeName"] for v in managed.volumes()}
    paths = {
        pv["spec"]["hostPath"]["path"] if "hostPath" in pv["spec"] else pv["spec"]["local"]["path"]
        for pv in node.json("get", "pv")["items"]
        if pv["metadata"]["name"] in names
    }
    assert len(paths) == len(SERVERS), paths
    done = subprocess.run(
        [*DEPLOY, "down", "--namespace", ns, "--release", RELEASE],
        env=node.env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    wait_for(
        lambda: not names & {pv["metadata"]["name"] for pv in node.json("get", "pv")["items"]},
        "the volumes of a Delete environment to be deleted",
        180,
    )
    wait_for(lambda: not any(Path(p).exists() for p in paths), f"the provisioner to remove {paths}", 120)
