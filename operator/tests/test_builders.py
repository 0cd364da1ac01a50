"""Pure builders: spec in, desired state out."""

from pathlib import Path
from typing import Any

import pytest
import yaml

from pinstack_operator import conditions
from pinstack_operator.builders import kafka, managed, monitoring, postgres, redis, secrets
from pinstack_operator.builders.spec import InvalidSpec, SecretRef, parse_spec

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]


def spec(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "services": ["users", "auth", "relations", "gateway"],
        "postgres": {"host": "pg", "adminSecretRef": {"name": "pg-admin"}, "databasePrefix": "p_"},
        "redis": {"host": "redis", "adminSecretRef": {"name": "r-admin"}, "keyPrefix": "dev."},
        "kafka": {
            "bootstrapServers": "k:9092",
            "topicPrefix": "dev.",
            "topicDefaults": {"partitions": 2, "retentionMs": 1000},
            "topics": [{"name": "relation-events", "partitions": 6, "config": {"cleanup.policy": "delete"}}],
        },
    }
    base.update(over)
    return base


def env(**over: Any):
    return parse_spec("pinstack", "dev", spec(**over))


def test_databases_skip_the_stateless_gateway() -> None:
    assert [(d.name, d.role) for d in postgres.databases(env())] == [
        ("p_users", "p_users"),
        ("p_auth", "p_auth"),
        ("p_relations", "p_relations"),
    ]


def test_acl_user_is_limited_to_its_prefix() -> None:
    users = {u.service: u for u in redis.acl_users(env())}
    assert users["auth"].username == "dev.auth"
    rules = users["auth"].rules("pw")
    assert rules[0] == "reset" and "~dev.auth:*" in rules and "&dev.auth:*" in rules and ">pw" in rules
    assert "+@all" in rules and "-@dangerous" in rules


def test_topics_union_of_services_and_overrides() -> None:
    topics = {t.name: t for t in kafka.topics(env())}
    assert set(topics) == {"dev.user-events", "dev.relation-events"}
    assert topics["dev.relation-events"].partitions == 6
    assert topics["dev.relation-events"].config == {"cleanup.policy": "delete", "retention.ms": "1000"}
    assert topics["dev.user-events"].partitions == 2


def test_partitions_only_grow_and_configs_kept_in_line() -> None:
    t = kafka.Topic("t", 4, None, {"retention.ms": "10"})
    assert kafka.topic_change(t, 6, {"retention.ms": "10"}).empty  # more than desired: left alone
    change = kafka.topic_change(t, 2, {"retention.ms": "99", "other": "x"})
    assert change.add_partitions_to == 4 and change.set_config == {"retention.ms": "10"}


def test_connection_secret_contract() -> None:
    e = env()
    auth = secrets.connection_data(e, "auth", "dbpw", "rpw", "PEM")
    assert auth == {
        "DATABASE_URL": "postgresql://p_auth:dbpw@pg:5432/p_auth?sslmode=prefer",
        "REDIS_URL": "redis://dev.auth:rpw@redis:6379/0",
        "REDIS_KEY_PREFIX": "dev.auth:",
        "KAFKA_BOOTSTRAP_SERVERS": "k:9092",
        "KAFKA_TOPIC_PREFIX": "dev.",
        "JWT_PRIVATE_KEY": "PEM",
    }
    gateway = secrets.connection_data(e, "gateway", "x", "rpw", None)
    assert "DATABASE_URL" not in gateway and "JWT_PRIVATE_KEY" not in gateway
    assert secrets.secret_name("pinstack", "gateway") == "pinstack-gateway-connection"
    secret = secrets.connection_secret(e, "auth", auth)
    assert secret["metadata"]["name"] == "pinstack-auth-connection" and secret["metadata"]["namespace"] == "dev"
    assert secret["metadata"]["labels"]["pinstack.io/service"] == "auth" and secret["stringData"] == auth


def test_components_are_one_list_with_distinct_names() -> None:
    from pinstack_operator.components import COMPONENTS

    assert COMPONENTS[0].condition == conditions.MANAGED  # the others wait for the managed servers
    assert len({c.key for c in COMPONENTS}) == len({c.condition for c in COMPONENTS}) == len(COMPONENTS)
    conditions_ = {c.condition for c in COMPONENTS}
    assert all(set(c.needs) <= conditions_ for c in COMPONENTS)


def test_a_component_runs_after_what_it_needs_and_only_when_that_is_ready() -> None:
    """The secrets wait for the databases, users and topics; a failed step or a conflict is that
    component's condition, and what needs it is Waiting, its step never run."""
    import asyncio
    import dataclasses

    from pinstack_operator.builders.ownership import Conflict
    from pinstack_operator.components import PROVISIONED, Pass
    from pinstack_operator.reconcile import ensure_all

    ran: list[str] = []

    def step(key: str, fail: BaseException | None = None) -> Any:
        async def ensure(_: Pass) -> list[str]:
            await asyncio.sleep(0.01 if key == "postgres" else 0)  # the needed one ends last
            ran.append(key)
            if fail is not None:
                raise fail
            return [f"made {key}"]

        return ensure

    def run(fails: dict[str, BaseException]) -> dict[str, Any]:
        ran.clear()
        components = tuple(dataclasses.replace(c, ensure=step(c.key, fails.get(c.key))) for c in PROVISIONED)
        found = asyncio.run(ensure_all(Pass(env(), {}), components))
        return {cond.type: (cond.status, cond.reason, cond.message, changes) for cond, changes in found}

    ok = run({})
    assert all(v[0] for v in ok.values()) and ok["SecretsReady"][3] == ["made secrets"]
    assert ran.index("secrets") > ran.index("postgres")
    assert ok["PostgresReady"][2] == "3 databases and roles"

    bad = run({"postgres": OSError("refused"), "kafka": Conflict("topic prefix belongs to ns/other")})
    assert bad["PostgresReady"][:3] == (False, conditions.FAILED, "OSError: refused")
    assert bad["KafkaTopicsReady"][:3] == (False, "Conflict", "topic prefix belongs to ns/other")
    assert bad["SecretsReady"][:3] == (
        False,
        "Waiting",
        "not written until KafkaTopicsReady, PostgresReady (see their conditions)",
    )
    assert "secrets" not in ran and bad["DashboardsReady"][0] and bad["RedisReady"][0]


def test_dashboards_and_rules_objects() -> None:
    cms = monitoring.dashboard_configmaps(env(dashboards={"folder": "F", "namespace": "grafana"}), {"red": "{}"})
    assert cms[0]["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cms[0]["metadata"]["namespace"] == "grafana"
    assert cms[0]["metadata"]["annotations"] == {"grafana_folder": "F"}
    assert monitoring.dashboard_configmaps(env(dashboards={"enabled": False}), {"red": "{}"}) == []
    rule = monitoring.prometheus_rule(env(alerts={"labels": {"release": "kps"}}), {"groups": []})
    assert rule is not None and rule["metadata"]["labels"]["release"] == "kps"
    cm = monitoring.rules_configmap(env(), {"groups": []})
    assert cm is not None and "pinstack.rules.yaml" in cm["data"]


@pytest.mark.parametrize(
    ("over", "message"),
    [
        ({"kafka": None}, "spec.kafka are required"),
        ({"services": ["billing"]}, "unknown services"),
        ({"mode": "Managed"}, "the operator's in Managed mode"),
        ({"mode": "Local"}, "expected External or Managed"),
    ],
)
def test_invalid_specs(over: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message):
        env(**over)


def test_conditions_keep_transition_time_when_status_is_unchanged() -> None:
    first = conditions.merge([], [conditions.Condition("PostgresReady", True, "Provisioned")], 1, "t1")
    again = conditions.merge(first, [conditions.Condition("PostgresReady", True, "Provisioned")], 1, "t2")
    assert again == first
    ready = next(c for c in again if c["type"] == "Ready")
    assert ready["status"] == "True" and ready["observedGeneration"] == 1
    failed = conditions.merge(first, [conditions.Condition("PostgresReady", False, "Failed", "x")], 2, "t3")
    assert {c["lastTransitionTime"] for c in failed} == {"t3"}
    assert conditions.phase(failed, first_time=False) == "Degraded"


def test_a_rotation_that_retires_every_credential_at_once_names_them_all_in_one_event() -> None:
    services = ["activity", "auth", "feed", "notifications", "posts", "relations", "social", "users"]
    done = [f"{conditions.ROTATION_DONE}switched off the login of role pinstack_{s}" for s in services]
    done += [f"{conditions.ROTATION_DONE}only the new password for Redis ACL user {s}" for s in [*services, "gateway"]]
    message = conditions.rotation_summary(done)
    assert len(message) < 1000, len(message)  # an Event's message is cut at 1 KiB
    assert message.startswith("switched off the login of role pinstack_activity, pinstack_auth,"), message
    assert "pinstack_users; only the new password for Redis ACL user activity, auth," in message
    assert message.endswith("users"), message


def test_scram_password_check() -> None:
    # SCRAM verifier of "secret" (salt and iterations fixed), as PostgreSQL stores it.
    import base64
    import hashlib
    import hmac

    from pinstack_operator.steps.postgres import password_matches

    salt, iterations = b"0123456789abcdef", 4096
    salted = hashlib.pbkdf2_hmac("sha256", b"secret", salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    stored = (
        f"SCRAM-SHA-256${iterations}:{base64.b64encode(salt).decode()}$"
        f"{base64.b64encode(hashlib.sha256(client_key).digest()).decode()}:{base64.b64encode(server_key).decode()}"
    )
    assert password_matches(stored, "r", "secret")
    assert not password_matches(stored, "r", "other")
    assert not password_matches(None, "r", "secret")


def test_kafka_prefix_belongs_to_the_oldest_live_environment() -> None:
    from pinstack_operator.builders.ownership import kafka_prefix_owner

    def env(ns: str, created: str, prefix: str = "p.", deleting: bool = False) -> dict[str, object]:
        meta: dict[str, object] = {"name": "env", "namespace": ns, "creationTimestamp": created}
        if deleting:
            meta["deletionTimestamp"] = "2026-01-03T00:00:00Z"
        return {"metadata": meta, "spec": {"kafka": {"bootstrapServers": "k:9092", "topicPrefix": prefix}}}

    old, young = env("a", "2026-01-01T00:00:00Z"), env("b", "2026-01-02T00:00:00Z")
    everyone = [old, young, env("c", "2025-01-01T00:00:00Z", prefix="other.")]
    assert kafka_prefix_owner(young, everyone) == "a/env"
    assert kafka_prefix_owner(old, everyone) is None
    assert kafka_prefix_owner(young, [env("a", "2026-01-01T00:00:00Z", deleting=True), young]) is None


def test_paused_and_failed_conditions_keep_what_the_components_last_said() -> None:
    from pinstack_operator import conditions as c

    ready = c.merge([], [c.Condition("PostgresReady", True, "Provisioned", "3 databases")], 1, "t0")
    paused = c.paused(ready, 2, "t1")
    assert {x["type"]: x["status"] for x in paused} == {"PostgresReady": "True", "Ready": "True", "Paused": "True"}
    assert c.phase(paused, first_time=False) == "Paused"
    assert next(x for x in paused if x["type"] == "PostgresReady")["observedGeneration"] == 1
    failed = c.failed(paused, "RuntimeError: boom", 2, "t2")
    assert {x["type"]: (x["status"], x["reason"]) for x in failed} == {
        "PostgresReady": ("True", "Provisioned"),
        "Ready": ("False", "ReconcileError"),
    }
    conflict = c.merge([], [c.Condition("PostgresReady", False, "Conflict", "database x belongs to ns/env")], 1, "t")
    assert next(x for x in conflict if x["type"] == "Ready")["reason"] == "Conflict"
    assert "ns/env" in next(x for x in conflict if x["type"] == "Ready")["message"]


def test_a_failed_step_is_a_reconcile_error_and_waiting_is_not() -> None:
    from pinstack_operator import conditions as c

    failed = c.merge(
        [],
        [
            c.Condition("PostgresReady", False, c.FAILED, "OperationalError: no password supplied"),
            c.Condition("RedisReady", True, "Provisioned", "8 ACL users"),
            c.Condition("SecretsReady", False, "Waiting", "not written until PostgresReady"),
        ],
        1,
        "t",
    )
    ready = next(x for x in failed if x["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ReconcileError")
    assert ready["message"] == "PostgresReady: OperationalError: no password supplied"
    waiting = c.merge([], [c.Condition("SecretsReady", False, "Waiting", "not written yet")], 1, "t")
    assert next(x for x in waiting if x["type"] == "Ready")["reason"] == "ComponentsNotReady"


def test_owner_comment_round_trip() -> None:
    from pinstack_operator.builders.ownership import comment_owner, database_comment

    assert comment_owner(database_comment("ns/env")) == "ns/env"
    assert comment_owner("a note somebody wrote") is None and comment_owner(None) is None


def test_managed_mode_points_every_server_at_its_in_cluster_service() -> None:
    e = parse_spec("env", "dev", {"mode": "Managed", "services": ["users", "gateway"], "managed": {"storage": "2Gi"}})
    assert e.managed is not None and e.managed.storage == "2Gi"
    assert e.managed.postgres_image == managed.default_image("postgres")
    assert (e.postgres.host, e.postgres.port, e.postgres.ssl_mode) == ("env-postgres.dev.svc", 5432, "disable")
    assert e.postgres.admin == secrets_ref("postgres") and e.redis.admin == secrets_ref("redis")
    assert e.kafka.bootstrap_servers == "env-kafka.dev.svc:9092" and e.kafka.replication_factor == 1
    assert env().managed is None


def secrets_ref(server: str) -> SecretRef:
    return SecretRef("env-managed-admin", f"{server}-password", f"{server}-username")


def test_managed_servers_are_statefulsets_with_volumes_behind_headless_services() -> None:
    spec_ = managed.ManagedSpec(storage="3Gi", storage_class="fast")
    for server in managed.SERVERS:
        sts = managed.statefulset("env", "dev", server, spec_, "Retain")
        svc = managed.service("env", "dev", server)
        assert sts["metadata"]["name"] == svc["metadata"]["name"] == sts["spec"]["serviceName"] == f"env-{server}"
        assert svc["spec"]["clusterIP"] == "None"
        assert svc["spec"]["selector"].items() <= sts["spec"]["template"]["metadata"]["labels"].items()
        claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
        assert claim["resources"]["requests"]["storage"] == "3Gi" and claim["storageClassName"] == "fast"
        assert sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Retain"
        assert managed.SPEC_HASH in sts["metadata"]["annotations"]
        container = sts["spec"]["template"]["spec"]["containers"][0]
        assert "readinessProbe" in container and container["ports"][0]["containerPort"] == managed.PORTS[server]
        # the restricted Pod Security level: non-root, no privilege, read-only root with a /tmp
        pod = sts["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == managed.UID
        assert container["securityContext"]["readOnlyRootFilesystem"]
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "tmp", "mountPath": managed.SCRATCH} in container["volumeMounts"]
    deleting = managed.statefulset("env", "dev", "kafka", spec_, "Delete")
    assert deleting["spec"]["persistentVolumeClaimRetentionPolicy"]["whenDeleted"] == "Delete"
    # The hash follows the spec, so a changed spec is written and an unchanged one is not.
    assert (
        deleting["metadata"]["annotations"]
        != managed.statefulset("env", "dev", "kafka", spec_, "Retain")["metadata"]["annotations"]
    )
    env_ = {e["name"]: e.get("value") for e in deleting["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env_["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://env-kafka.dev.svc:9092"
    # Passwords come from the admin Secret, never inline.
    pg = managed.statefulset("env", "dev", "postgres", spec_, "Retain")["spec"]["template"]["spec"]["containers"][0]
    assert pg["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "env-managed-admin", "key": "postgres-password"}


def test_managed_images_default_to_the_operators_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PINSTACK_MANAGED_KAFKA_IMAGE", "localhost/pinstack/kafka:abc")
    parsed = managed.parse({"images": {"postgres": "pg:1"}})
    assert (parsed.postgres_image, parsed.kafka_image) == ("pg:1", "localhost/pinstack/kafka:abc")
    assert parsed.redis_image == managed.FALLBACK_IMAGES["redis"]


def test_starting_managed_servers_make_the_phase_provisioning() -> None:
    starting = conditions.Condition(conditions.MANAGED, False, conditions.STARTING, "waiting")
    merged = conditions.merge([], [starting], 1, "t")
    assert conditions.phase(merged, first_time=False) == "Provisioning"


def test_the_crd_leaves_the_managed_images_to_the_operator() -> None:
    crd = yaml.safe_load((ROOT / "manifests" / "crd" / "pinstack.io_pinstackenvironments.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["managed"]
    # a CRD default would be stored in every resource and the operator's setting never used
    images = schema["properties"]["images"]["properties"]
    assert set(images) == set(managed.SERVERS) and not any("default" in v for v in images.values())
    assert schema["properties"]["storage"]["default"] == managed.ManagedSpec().storage


def test_a_database_or_role_not_made_for_the_environment_is_refused() -> None:
    from pinstack_operator.builders.ownership import DatabaseFound, database_conflict

    me, other = "ns/env", "ns/other"

    def conflict(**found: Any) -> str | None:
        return database_conflict(DatabaseFound("p_users", "p_users", **found), me)

    assert conflict() is None  # nothing there yet
    mine = {"database_exists": True, "database_claim": me, "role_exists": True, "role_claim": me}
    assert conflict(**mine) is None
    assert conflict(**{**mine, "role_claim": None}) is None  # an older operator claimed only the database
    # A crash between CREATE DATABASE and its COMMENT: owned by the role claimed for me.
    assert conflict(database_exists=True, database_owner_claim=me, role_exists=True, role_claim=me) is None
    assert conflict(database_exists=True, database_claim=other) == f"database p_users belongs to {other}"
    assert conflict(role_exists=True, role_claim=other) == f"role p_users belongs to {other}"
    made_by_hand = conflict(database_exists=True, role_exists=True)
    assert made_by_hand is not None and made_by_hand.startswith("database p_users exists but was not made for ns/env")
    assert "COMMENT ON DATABASE" in made_by_hand
    assert conflict(database_exists=True, database_owner_claim=other) is not None
    role_by_hand = conflict(role_exists=True)
    assert role_by_hand is not None and role_by_hand.startswith("role p_users exists but was not made for ns/env")


# ------------------------------------------------------------------ rotation with an overlap


def test_a_rotation_keeps_the_old_redis_password_beside_the_new_until_retired() -> None:
    from pinstack_operator.steps.redis import acl_in_line

    user = next(u for u in redis.acl_users(env()) if u.service == "auth")
    old, new = redis.password_hash("old"), redis.password_hash("new")
    rules = user.rules("new", keep=[old, new])
    assert ">new" in rules and f"#{old}" in rules and f"#{new}" not in rules  # the new one once
    actual = {"flags": ["on"], "passwords": [new, old], "keys": [f"~{user.key_pattern}"],
              "channels": [f"&{user.key_pattern}"], "commands": list(redis.COMMAND_RULES)}  # fmt: skip
    assert acl_in_line(actual, user, "new", retire=False)  # overlapping: in line
    assert not acl_in_line(actual, user, "new", retire=True)  # retiring: the old one goes
    assert not acl_in_line({**actual, "passwords": [old]}, user, "new", retire=False)  # the new one is missing


def test_a_rotation_moves_the_database_login_to_the_other_role_and_back() -> None:
    from pinstack_operator.components import Credentials

    db = next(d for d in postgres.databases(env()) if d.service == "users")
    assert db.logins == ("p_users", "p_users_alt")
    first = Credentials.keep_or_make("users", None, database=db)
    assert first.db_login == "p_users"  # a new environment logs in as the role itself
    url = secrets.connection_data(env(), "users", first.db, "r", None, first.db_login)["DATABASE_URL"]
    kept = Credentials.keep_or_make("users", {"DATABASE_URL": url}, database=db)
    assert (kept.db_login, kept.db) == ("p_users", first.db)
    rotated = Credentials.keep_or_make("users", {"DATABASE_URL": url}, rotate=True, database=db)
    assert rotated.db_login == "p_users_alt" and rotated.db != first.db
    url = secrets.connection_data(env(), "users", rotated.db, "r", None, rotated.db_login)["DATABASE_URL"]
    assert url.startswith(f"postgresql://p_users_alt:{rotated.db}@")
    back = Credentials.keep_or_make("users", {"DATABASE_URL": url}, rotate=True, database=db)
    assert back.db_login == "p_users"
    assert Credentials.keep_or_make("gateway", None, rotate=True).db_login is None  # no database


def test_old_credentials_retire_only_once_every_pod_runs_the_new_template_for_a_while() -> None:
    from datetime import UTC, datetime, timedelta

    from pinstack_operator.steps.kube import ROLLOUT_SETTLE_SECONDS, rollout_settled

    now = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)

    def deployment(done_ago: float, **status: int) -> dict[str, Any]:
        done = (now - timedelta(seconds=done_ago)).isoformat()
        full = {"observedGeneration": 2, "replicas": 2, "updatedReplicas": 2, "availableReplicas": 2, **status}
        condition = {"type": "Progressing", "reason": "NewReplicaSetAvailable", "lastUpdateTime": done}
        return {"metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": {**full, "conditions": [condition]}}

    assert rollout_settled(deployment(ROLLOUT_SETTLE_SECONDS + 1), now)
    assert not rollout_settled(deployment(1), now)  # old pods may still be draining
    assert not rollout_settled(deployment(600, observedGeneration=1), now)  # the roll not seen yet
    assert not rollout_settled(deployment(600, updatedReplicas=1), now)
    assert not rollout_settled(deployment(600, replicas=3), now)  # an old pod still counted
    assert not rollout_settled(deployment(600, availableReplicas=1), now)


def test_a_deployment_whose_pods_ran_on_an_old_secret_is_rolled_even_when_unavailable() -> None:
    from pinstack_operator.steps.kube import ran_before

    def deployment(available: int, status: str, after_creation: int) -> dict[str, Any]:
        condition = {
            "type": "Available",
            "status": status,
            "lastTransitionTime": f"2026-12-05T12:{after_creation // 60:02d}:{after_creation % 60:02d}Z",
        }
        return {"metadata": {"creationTimestamp": "2026-12-05T12:00:00Z"},
                "status": {"availableReplicas": available, "conditions": [condition]}}  # fmt: skip

    assert ran_before(deployment(1, "True", 5))
    assert not ran_before(deployment(0, "False", 1))  # a first install, its pods waiting for their Secret
    assert ran_before(deployment(0, "False", 900))  # available once, unready now (its Secret went)
    assert not ran_before({"metadata": {}, "status": {}})
