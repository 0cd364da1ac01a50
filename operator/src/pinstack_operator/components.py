"""What the operator provisions, as data: one entry per component, each with its status condition,
its ensure step (idempotent: no change, no write) and its tear-down. reconcile(), the status
conditions and the metrics all iterate COMPONENTS; adding a component is one entry here.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinstack_operator import assets
from pinstack_operator.builders import kafka, managed, monitoring, ownership, postgres, redis
from pinstack_operator.builders import secrets as secret_builder
from pinstack_operator.builders.spec import EnvironmentSpec, SecretRef
from pinstack_operator.conditions import MANAGED, STARTING
from pinstack_operator.steps import kafka as kafka_step
from pinstack_operator.steps import kube
from pinstack_operator.steps import postgres as pg_step
from pinstack_operator.steps import redis as redis_step


def new_password() -> str:
    return secrets.token_urlsafe(24)


def new_jwt_key() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _password_from(url: str | None) -> str | None:
    return urlsplit(url).password if url else None


@dataclass(frozen=True)
class Credentials:
    db: str
    redis: str
    jwt: str | None
    db_login: str | None = None  # the database role the service logs in as (builders/postgres.py)

    @classmethod
    def keep_or_make(
        cls,
        service: str,
        current: Mapping[str, str] | None,
        rotate: bool = False,
        database: postgres.Database | None = None,
    ) -> Credentials:
        """Keep what the connection Secret already holds; generate what is missing. `rotate`: new
        database and Redis passwords, the database's other login (the JWT signing key is kept:
        rotating it needs a key overlap)."""
        current = {} if current is None else current
        jwt = (
            current.get(secret_builder.JWT_PRIVATE_KEY) or new_jwt_key()
            if secret_builder.needs_jwt_key(service)
            else None
        )
        login = None
        if database is not None:
            login = urlsplit(current.get("DATABASE_URL") or "").username
            login = database.role if login not in database.logins else login
            login = database.other_login(login) if rotate else login
        return cls(
            db=(None if rotate else _password_from(current.get("DATABASE_URL"))) or new_password(),
            redis=(None if rotate else _password_from(current.get("REDIS_URL"))) or new_password(),
            jwt=jwt,
            db_login=login,
        )


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


@dataclass
class Pass:
    """One reconciliation (or tear-down) of one environment: what every step reads."""

    env: EnvironmentSpec
    body: Mapping[str, Any]
    creds: dict[str, Credentials] = field(default_factory=dict)  # per service; filled before the steps
    # Per service: whether the old credentials of a rotation may be switched off now (its pods
    # all run on the new Secret); until then both old and new log in. Filled before the steps.
    retire: dict[str, bool] = field(default_factory=dict)

    @property
    def me(self) -> str:
        return ownership.owner_id(self.env.namespace, self.env.name)

    def owned(self, obj: dict[str, Any]) -> dict[str, Any]:
        """ownerReferences only work within the namespace; others are cleaned up by the finalizer."""
        if obj["metadata"]["namespace"] == self.env.namespace:
            obj["metadata"]["ownerReferences"] = [owner_reference(self.body)]
        return obj

    async def ensure(self, objects: list[dict[str, Any]]) -> list[str]:
        changes: list[str] = []
        for obj in objects:
            changes += await asyncio.to_thread(kube.ensure_object, self.owned(obj))
        return changes

    @property
    def drops_data(self) -> bool:
        """Whether deleting this environment removes what it made on the shared servers (Managed
        mode's data lives in its servers' volumes, kept or deleted with them)."""
        return self.env.managed is None and self.env.deletion_policy == "Delete"


async def delete(kind: str, namespace: str, name: str) -> list[str]:
    return await asyncio.to_thread(kube.delete_object, kind, namespace, name)


T = TypeVar("T")


async def each(items: Iterable[T], step: Callable[[T], Awaitable[list[str]]]) -> list[str]:
    """The changes of `step` over `items`, one after the other."""
    changes: list[str] = []
    for item in items:
        changes += await step(item)
    return changes


class Pending(Exception):
    """Not done yet and not a failure (the managed servers' pods are starting)."""

    def __init__(self, reason: str, message: str, changes: list[str]) -> None:
        super().__init__(message)
        self.reason, self.changes = reason, changes


Step = Callable[[Pass], Awaitable[list[str]]]


async def _no_conflicts(_: Pass) -> list[str]:
    return []


@dataclass(frozen=True)
class Component:
    key: str  # the metrics' `component` label and the key of Outcome.changes
    condition: str  # its status condition type
    ensure: Step
    tear_down: Step
    done: Callable[[EnvironmentSpec], str]  # the condition's message once ensured
    ready_reason: str = "Provisioned"
    needs: tuple[str, ...] = ()  # conditions that must be True before `ensure` runs
    # Read only: what another environment already owns of this component's names.
    conflicts: Step = _no_conflicts


# ------------------------------------------------------------------ admin credentials


async def _admin_secret(namespace: str, ref: SecretRef) -> tuple[str, str]:
    data = await asyncio.to_thread(kube.read_secret, namespace, ref.name)
    if data is None:
        raise LookupError(f"admin Secret {namespace}/{ref.name} not found")
    return data.get(ref.username_key, ""), data.get(ref.key, "")


async def pg_admin(env: EnvironmentSpec) -> pg_step.Admin:
    user, password = await _admin_secret(env.namespace, env.postgres.admin)
    pg = env.postgres
    return pg_step.Admin(pg.host, pg.port, user or "postgres", password, pg.ssl_mode)


async def redis_admin(env: EnvironmentSpec) -> redis_step.Admin:
    user, password = await _admin_secret(env.namespace, env.redis.admin)
    rd = env.redis
    return redis_step.Admin(rd.host, rd.port, user or None, password or None, rd.tls)


# ------------------------------------------------------------------ managed servers


async def _ensure_managed(run: Pass) -> list[str]:
    """Managed mode: the admin Secret (passwords generated once), a Service and a StatefulSet per
    server; Pending until every server has a ready pod."""
    env = run.env
    assert env.managed is not None
    secret = managed.admin_secret_name(env.name)
    current = await asyncio.to_thread(kube.read_secret, env.namespace, secret) or {}
    passwords = {s: current.get(managed.password_key(s)) or new_password() for s in managed.ADMINS}
    changes = await asyncio.to_thread(kube.ensure_object, managed.admin_secret(env.name, env.namespace, passwords))
    for server in managed.SERVERS:
        changes += await run.ensure(
            [
                managed.service(env.name, env.namespace, server),
                managed.statefulset(env.name, env.namespace, server, env.managed, env.deletion_policy),
            ]
        )
    ready = await asyncio.gather(
        *(
            asyncio.to_thread(kube.ready_replicas, env.namespace, managed.workload_name(env.name, server))
            for server in managed.SERVERS
        )
    )
    waiting = [server for server, n in zip(managed.SERVERS, ready, strict=True) if n < 1]
    if waiting:
        raise Pending(STARTING, f"waiting for ready pods: {', '.join(waiting)}", changes)
    return changes


async def _tear_down_managed(run: Pass) -> list[str]:
    """The data is in the servers' volumes, kept or deleted with them by their claim retention
    policy; the admin Secret stays with kept volumes (they need its passwords)."""
    env = run.env
    if env.managed is None:
        return []
    changes: list[str] = []
    for server in managed.SERVERS:
        name = managed.workload_name(env.name, server)
        changes += await delete("StatefulSet", env.namespace, name)
        changes += await delete("Service", env.namespace, name)
    if env.deletion_policy == "Delete":
        changes += await delete("Secret", env.namespace, managed.admin_secret_name(env.name))
    return changes


# ------------------------------------------------------------------ PostgreSQL


async def _ensure_postgres(run: Pass) -> list[str]:
    admin = await pg_admin(run.env)
    return await each(
        postgres.databases(run.env),
        lambda db: pg_step.ensure_database(
            admin, db, _login(run, db), run.creds[db.service].db, run.me, retire=run.retire.get(db.service, True)
        ),
    )


def _login(run: Pass, db: postgres.Database) -> str:
    return run.creds[db.service].db_login or db.role


async def _tear_down_postgres(run: Pass) -> list[str]:
    if not run.drops_data:
        return []
    admin = await pg_admin(run.env)
    return await each(postgres.databases(run.env), lambda db: pg_step.drop_database(admin, db, run.me))


async def _postgres_conflicts(run: Pass) -> list[str]:
    return await pg_step.foreign_owners(await pg_admin(run.env), postgres.databases(run.env), run.me)


# ------------------------------------------------------------------ Redis


async def _ensure_redis(run: Pass) -> list[str]:
    admin = await redis_admin(run.env)
    return await each(
        redis.acl_users(run.env),
        lambda u: redis_step.ensure_user(
            admin, u, run.creds[u.service].redis, run.me, retire=run.retire.get(u.service, True)
        ),
    )


async def _tear_down_redis(run: Pass) -> list[str]:
    if not run.drops_data:
        return []
    admin = await redis_admin(run.env)
    return await each(redis.acl_users(run.env), lambda u: redis_step.delete_user(admin, u, run.me))


async def _redis_conflicts(run: Pass) -> list[str]:
    return await redis_step.foreign_owners(await redis_admin(run.env), redis.acl_users(run.env), run.me)


# ------------------------------------------------------------------ Kafka


async def _ensure_kafka(run: Pass) -> list[str]:
    return await kafka_step.ensure_topics(run.env.kafka.bootstrap_servers, kafka.topics(run.env))


async def _prefix_owner(run: Pass) -> str | None:
    return ownership.kafka_prefix_owner(run.body, await asyncio.to_thread(kube.list_environments))


async def _tear_down_kafka(run: Pass) -> list[str]:
    if not run.drops_data or await _prefix_owner(run) is not None:
        return []
    return await kafka_step.delete_topics(run.env.kafka.bootstrap_servers, [t.name for t in kafka.topics(run.env)])


async def _kafka_conflicts(run: Pass) -> list[str]:
    other = await _prefix_owner(run)
    if other is None:
        return []
    env = run.env
    return [f"Kafka topic prefix {env.kafka.topic_prefix!r} on {env.kafka.bootstrap_servers} belongs to {other}"]


# ------------------------------------------------------------------ connection Secrets


def workloads(env: EnvironmentSpec, service: str | None = None) -> str:
    """The label selector of a service's Deployments, or of all the environment's (umbrella
    release = environment name)."""
    release = f"app.kubernetes.io/instance={env.name}"
    return f"{release},app.kubernetes.io/name={service}" if service else release


async def _ensure_secrets(run: Pass) -> list[str]:
    env = run.env
    secrets = {
        s: secret_builder.connection_secret(
            env, s, secret_builder.connection_data(env, s, c.db, c.redis, c.jwt, c.db_login)
        )
        for s, c in run.creds.items()
    }
    changes: list[str] = []
    for service, secret in secrets.items():
        changed = await run.ensure([secret])
        changes += changed
        # A Secret created again (an environment applied anew) or rotated: the service's
        # Deployments (umbrella release = environment name) roll to read it; an unchanged one
        # restarts nothing.
        if changed:
            version = hashlib.sha256(json.dumps(secret["stringData"], sort_keys=True).encode()).hexdigest()[:16]
            changes += await asyncio.to_thread(kube.roll_deployments, env.namespace, workloads(env, service), version)
    return changes


async def _tear_down_secrets(run: Pass) -> list[str]:
    env = run.env
    return await each(env.services, lambda s: delete("Secret", env.namespace, secret_builder.secret_name(env.name, s)))


# ------------------------------------------------------------------ dashboards and alert rules


async def _ensure_dashboards(run: Pass) -> list[str]:
    return await run.ensure(monitoring.dashboard_configmaps(run.env, assets.dashboards()))


async def _tear_down_dashboards(run: Pass) -> list[str]:
    return await each(
        monitoring.dashboard_configmaps(run.env, assets.dashboards()),
        lambda cm: delete("ConfigMap", cm["metadata"]["namespace"], cm["metadata"]["name"]),
    )


def _alerts_name(env: EnvironmentSpec) -> str:
    return f"{env.name}-alerts"


async def _ensure_alerts(run: Pass) -> list[str]:
    """A PrometheusRule where the Prometheus Operator's CRD is installed, else a ConfigMap; the
    other form is removed when the cluster changes."""
    env = run.env
    if await asyncio.to_thread(kube.prometheus_rules_served):
        obj, stale = monitoring.prometheus_rule(env, assets.rules()), "ConfigMap"
    else:
        obj, stale = monitoring.rules_configmap(env, assets.rules()), ""
    if obj is None:
        return []
    changes = await run.ensure([obj])
    if stale:
        changes += await delete(stale, env.namespace, _alerts_name(env))
    return changes


async def _tear_down_alerts(run: Pass) -> list[str]:
    env = run.env
    changes = await delete("ConfigMap", env.namespace, _alerts_name(env))
    if await asyncio.to_thread(kube.prometheus_rules_served):
        changes += await delete("PrometheusRule", env.namespace, _alerts_name(env))
    return changes


# ------------------------------------------------------------------ the list

MANAGED_SERVERS = Component(
    "managed",
    MANAGED,
    _ensure_managed,
    _tear_down_managed,
    lambda _: "postgres, redis and kafka are ready",
    ready_reason="Running",
)
# Provisioned in one pass, concurrently (a component with `needs` waits for them); torn down in
# reverse order, so the connection Secrets go before what they name.
PROVISIONED = (
    Component(
        "postgres",
        "PostgresReady",
        _ensure_postgres,
        _tear_down_postgres,
        lambda env: f"{len(postgres.databases(env))} databases and roles",
        conflicts=_postgres_conflicts,
    ),
    Component(
        "redis",
        "RedisReady",
        _ensure_redis,
        _tear_down_redis,
        lambda env: f"{len(redis.acl_users(env))} ACL users",
        conflicts=_redis_conflicts,
    ),
    Component(
        "kafka",
        "KafkaTopicsReady",
        _ensure_kafka,
        _tear_down_kafka,
        lambda env: f"{len(kafka.topics(env))} topics",
        conflicts=_kafka_conflicts,
    ),
    # A connection Secret only for what exists: pods started on credentials of a database, role
    # or ACL user that was never made would fail in ways far from the cause.
    Component(
        "secrets",
        "SecretsReady",
        _ensure_secrets,
        _tear_down_secrets,
        lambda env: f"{len(env.services)} connection Secrets",
        needs=("PostgresReady", "RedisReady", "KafkaTopicsReady"),
    ),
    Component(
        "dashboards",
        "DashboardsReady",
        _ensure_dashboards,
        _tear_down_dashboards,
        lambda env: "dashboards written" if env.dashboards_enabled else "disabled",
    ),
    Component(
        "alerts",
        "AlertsReady",
        _ensure_alerts,
        _tear_down_alerts,
        lambda env: "alert rules written" if env.alerts_enabled else "disabled",
    ),
)
# Managed mode's servers come first: the others wait for them.
COMPONENTS = (MANAGED_SERVERS, *PROVISIONED)
