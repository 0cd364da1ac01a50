"""One reconciliation of a PinstackEnvironment: builders give the desired state, steps make it so.

Everything here is idempotent: with nothing to change, no step writes and the status is not
patched. Returns the changes per component so handlers can post Events and count drift.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinstack_operator import assets
from pinstack_operator.builders import kafka, managed, monitoring, ownership, postgres, redis
from pinstack_operator.builders import secrets as secret_builder
from pinstack_operator.builders.spec import EnvironmentSpec, SecretRef
from pinstack_operator.conditions import COMPONENTS, FAILED, MANAGED, ORDER, STARTING, Condition
from pinstack_operator.steps import kafka as kafka_step
from pinstack_operator.steps import kube
from pinstack_operator.steps import postgres as pg_step
from pinstack_operator.steps import redis as redis_step


@dataclass
class Outcome:
    changes: dict[str, list[str]] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    duration: float = 0.0
    waiting: bool = False  # for the managed servers to start: retried soon, not a degradation

    @property
    def writes(self) -> int:
        return sum(len(v) for v in self.changes.values())

    @property
    def ready(self) -> bool:
        return all(c.status for c in self.conditions)


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


def _credentials(
    env: EnvironmentSpec, service: str, current: Mapping[str, str] | None, rotate: bool = False
) -> Credentials:
    """Keep what the connection Secret already holds; generate what is missing. `rotate`: new
    database and Redis passwords (the JWT signing key is kept: rotating it needs a key overlap)."""
    current = {} if current is None else current
    jwt = (
        current.get(secret_builder.JWT_PRIVATE_KEY) or new_jwt_key() if secret_builder.needs_jwt_key(service) else None
    )
    return Credentials(
        db=(None if rotate else _password_from(current.get("DATABASE_URL"))) or new_password(),
        redis=(None if rotate else _password_from(current.get("REDIS_URL"))) or new_password(),
        jwt=jwt,
    )


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


def owner_reference(body: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": body["apiVersion"],
        "kind": body["kind"],
        "name": body["metadata"]["name"],
        "uid": body["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _owned(obj: dict[str, Any], owner: dict[str, Any], namespace: str) -> dict[str, Any]:
    """ownerReferences only work within the namespace; others are cleaned up by the finalizer."""
    if obj["metadata"]["namespace"] == namespace:
        obj["metadata"]["ownerReferences"] = [owner]
    return obj


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:1000]


async def find_conflicts(env: EnvironmentSpec, body: Mapping[str, Any]) -> dict[str, list[str]]:
    """Condition type -> what another environment owns (read only). A server that cannot be read
    here is reported by the provisioning step itself, so errors are not conflicts."""
    me = ownership.owner_id(env.namespace, env.name)

    async def pg() -> list[str]:
        return await pg_step.foreign_owners(await pg_admin(env), postgres.databases(env), me)

    async def rd() -> list[str]:
        return await redis_step.foreign_owners(await redis_admin(env), redis.acl_users(env), me)

    async def kf() -> list[str]:
        other = ownership.kafka_prefix_owner(body, await asyncio.to_thread(kube.list_environments))
        if other is None:
            return []
        return [f"Kafka topic prefix {env.kafka.topic_prefix!r} on {env.kafka.bootstrap_servers} belongs to {other}"]

    found = await asyncio.gather(pg(), rd(), kf(), return_exceptions=True)
    return {
        kind: messages
        for kind, messages in zip(("PostgresReady", "RedisReady", "KafkaTopicsReady"), found, strict=True)
        if isinstance(messages, list) and messages
    }


def _conflicted(conflicts: dict[str, list[str]], started: float) -> Outcome:
    """Nothing is written while another environment owns a name this one wants."""
    out = Outcome(changes={})
    for kind in COMPONENTS:
        if kind in conflicts:
            out.conditions.append(Condition(kind, False, "Conflict", "; ".join(conflicts[kind])[:1000]))
        else:
            out.conditions.append(Condition(kind, False, "Blocked", "not provisioned: another environment owns names"))
    out.duration = time.monotonic() - started
    return out


NEEDED_BY_SECRETS = ("PostgresReady", "RedisReady", "KafkaTopicsReady")


class SecretsWithheld(Exception):
    """The connection Secrets wait for the databases, users and topics they name."""


async def reconcile(env: EnvironmentSpec, body: Mapping[str, Any], rotate: bool = False) -> Outcome:
    """`rotate`: new passwords for every database role and Redis user (and their Secrets)."""
    started = time.monotonic()
    owner = owner_reference(body)
    out = Outcome()
    if env.managed is not None:  # the servers are this environment's own: no one to conflict with
        changes, waiting = await ensure_managed(env, owner)
        out.changes["managed"] = changes
        if waiting:
            message = f"waiting for ready pods: {', '.join(waiting)}"
            out.conditions = [Condition(MANAGED, False, STARTING, message)]
            out.conditions += [
                Condition(kind, False, "Waiting", "waiting for the managed servers") for kind in COMPONENTS
            ]
            out.waiting, out.duration = True, time.monotonic() - started
            return out
        out.conditions.append(Condition(MANAGED, True, "Running", "postgres, redis and kafka are ready"))
    else:
        conflicts = await find_conflicts(env, body)
        if conflicts:
            return _conflicted(conflicts, started)
    me = ownership.owner_id(env.namespace, env.name)
    dbs = postgres.databases(env)
    users = redis.acl_users(env)

    existing = await asyncio.gather(
        *(
            asyncio.to_thread(kube.read_secret, env.namespace, secret_builder.secret_name(env.name, s))
            for s in env.services
        )
    )
    creds = {s: _credentials(env, s, cur, rotate) for s, cur in zip(env.services, existing, strict=True)}

    async def component(key: str, condition: str, work: Any, ok_message: str) -> None:
        try:
            changes = await work
            out.changes[key] = changes
            out.conditions.append(Condition(condition, True, "Provisioned", ok_message))
        except ownership.Conflict as e:
            out.changes.setdefault(key, [])
            out.conditions.append(Condition(condition, False, "Conflict", str(e)))
        except SecretsWithheld as e:
            out.changes.setdefault(key, [])
            out.conditions.append(Condition(condition, False, "Waiting", str(e)))
        except Exception as e:
            out.changes.setdefault(key, [])
            out.conditions.append(Condition(condition, False, FAILED, _error(e)))

    async def do_postgres() -> list[str]:
        admin = await pg_admin(env)
        changes: list[str] = []
        for db in dbs:
            changes += await pg_step.ensure_database(admin, db, creds[db.service].db, me)
        return changes

    async def do_redis() -> list[str]:
        admin = await redis_admin(env)
        changes: list[str] = []
        for user in users:
            changes += await redis_step.ensure_user(admin, user, creds[user.service].redis, me)
        return changes

    topics = kafka.topics(env)
    await asyncio.gather(
        component("postgres", "PostgresReady", do_postgres(), f"{len(dbs)} databases and roles"),
        component("redis", "RedisReady", do_redis(), f"{len(users)} ACL users"),
        component(
            "kafka",
            "KafkaTopicsReady",
            kafka_step.ensure_topics(env.kafka.bootstrap_servers, topics),
            f"{len(topics)} topics",
        ),
    )

    # A connection Secret only for what exists: pods started on credentials of a database, role
    # or ACL user that was never made would fail in ways far from the cause.
    missing = [c.type for c in out.conditions if c.type in NEEDED_BY_SECRETS and not c.status]

    async def do_secrets() -> list[str]:
        if missing:
            raise SecretsWithheld(f"not written until {', '.join(sorted(missing))} (see their conditions)")
        changes: list[str] = []
        for s in env.services:
            c = creds[s]
            body_ = {
                "apiVersion": "v1",
                "kind": "Secret",
                "type": "Opaque",
                "metadata": {
                    "name": secret_builder.secret_name(env.name, s),
                    "namespace": env.namespace,
                    "labels": dict(secret_builder.labels(env, s)),
                },
                "stringData": secret_builder.connection_data(env, s, c.db, c.redis, c.jwt),
            }
            changes += await asyncio.to_thread(kube.ensure_object, _owned(body_, owner, env.namespace))
        return changes

    async def do_dashboards() -> list[str]:
        changes: list[str] = []
        for cm in monitoring.dashboard_configmaps(env, assets.dashboards()):
            changes += await asyncio.to_thread(kube.ensure_object, _owned(cm, owner, env.namespace))
        return changes

    async def do_alerts() -> list[str]:
        if await asyncio.to_thread(kube.prometheus_rules_served):
            obj = monitoring.prometheus_rule(env, assets.rules())
            stale = ("ConfigMap", f"{env.name}-alerts")
        else:
            obj = monitoring.rules_configmap(env, assets.rules())
            stale = ("PrometheusRule", "")
        changes: list[str] = []
        if obj is not None:
            changes += await asyncio.to_thread(kube.ensure_object, _owned(obj, owner, env.namespace))
            if stale[1]:
                changes += await asyncio.to_thread(kube.delete_object, stale[0], env.namespace, stale[1])
        return changes

    await asyncio.gather(
        component("secrets", "SecretsReady", do_secrets(), f"{len(env.services)} connection Secrets"),
        component(
            "dashboards",
            "DashboardsReady",
            do_dashboards(),
            "dashboards written" if env.dashboards_enabled else "disabled",
        ),
        component("alerts", "AlertsReady", do_alerts(), "alert rules written" if env.alerts_enabled else "disabled"),
    )
    out.conditions.sort(key=lambda c: ORDER.index(c.type))
    out.duration = time.monotonic() - started
    return out


async def ensure_managed(env: EnvironmentSpec, owner: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Managed mode: the admin Secret (passwords generated once), a Service and a StatefulSet per
    server. Returns (changes, servers whose pod is not ready yet)."""
    assert env.managed is not None
    secret = managed.admin_secret_name(env.name)
    current = await asyncio.to_thread(kube.read_secret, env.namespace, secret) or {}
    passwords = {s: current.get(managed.password_key(s)) or new_password() for s in managed.ADMINS}
    changes = await asyncio.to_thread(kube.ensure_object, managed.admin_secret(env.name, env.namespace, passwords))
    for server in managed.SERVERS:
        for obj in (
            managed.service(env.name, env.namespace, server),
            managed.statefulset(env.name, env.namespace, server, env.managed, env.deletion_policy),
        ):
            changes += await asyncio.to_thread(kube.ensure_object, _owned(obj, owner, env.namespace))
    ready = await asyncio.gather(
        *(
            asyncio.to_thread(kube.ready_replicas, env.namespace, managed.workload_name(env.name, server))
            for server in managed.SERVERS
        )
    )
    return changes, [server for server, n in zip(managed.SERVERS, ready, strict=True) if n < 1]


async def tear_down(env: EnvironmentSpec, body: Mapping[str, Any]) -> list[str]:
    """On deletion: remove the Kubernetes children; with deletionPolicy Delete also the data this
    environment owns (never what another environment claimed)."""
    me = ownership.owner_id(env.namespace, env.name)
    changes: list[str] = []
    for s in env.services:
        changes += await asyncio.to_thread(
            kube.delete_object, "Secret", env.namespace, secret_builder.secret_name(env.name, s)
        )
    for cm in monitoring.dashboard_configmaps(env, assets.dashboards()):
        changes += await asyncio.to_thread(
            kube.delete_object, "ConfigMap", cm["metadata"]["namespace"], cm["metadata"]["name"]
        )
    changes += await asyncio.to_thread(kube.delete_object, "ConfigMap", env.namespace, f"{env.name}-alerts")
    if await asyncio.to_thread(kube.prometheus_rules_served):
        changes += await asyncio.to_thread(kube.delete_object, "PrometheusRule", env.namespace, f"{env.name}-alerts")
    if env.managed is not None:
        # The data is in the servers' volumes, kept or deleted with them by their claim
        # retention policy; the admin Secret stays with kept volumes (they need its passwords).
        for server in managed.SERVERS:
            name = managed.workload_name(env.name, server)
            changes += await asyncio.to_thread(kube.delete_object, "StatefulSet", env.namespace, name)
            changes += await asyncio.to_thread(kube.delete_object, "Service", env.namespace, name)
        if env.deletion_policy == "Delete":
            secret = managed.admin_secret_name(env.name)
            changes += await asyncio.to_thread(kube.delete_object, "Secret", env.namespace, secret)
        return changes
    if env.deletion_policy != "Delete":
        return changes
    admin = await pg_admin(env)
    for db in postgres.databases(env):
        changes += await pg_step.drop_database(admin, db, me)
    radmin = await redis_admin(env)
    for user in redis.acl_users(env):
        changes += await redis_step.delete_user(radmin, user, me)
    if ownership.kafka_prefix_owner(body, await asyncio.to_thread(kube.list_environments)) is None:
        changes += await kafka_step.delete_topics(env.kafka.bootstrap_servers, [t.name for t in kafka.topics(env)])
    return changes
