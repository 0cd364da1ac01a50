"""The per-service connection Secret the charts mount: <env>-<service>-connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pinstack_operator.builders import postgres, redis
from pinstack_operator.builders.spec import EnvironmentSpec

JWT_PRIVATE_KEY = "JWT_PRIVATE_KEY"


def secret_name(env_name: str, service: str) -> str:
    return f"{env_name}-{service}-connection"


def connection_data(
    env: EnvironmentSpec,
    service: str,
    db_password: str,
    redis_password: str,
    jwt_private_key: str | None,
    db_login: str | None = None,
) -> dict[str, str]:
    """Secret stringData for one service. Passwords and the key are inputs: this stays pure.
    `db_login`: the database role the service logs in as (its role unless given)."""
    data: dict[str, str] = {}
    dbs = {d.service: d for d in postgres.databases(env)}
    if service in dbs:
        db = dbs[service]
        data["DATABASE_URL"] = postgres.database_url(env, db, db_login or db.role, db_password)
    user = next(u for u in redis.acl_users(env) if u.service == service)
    data["REDIS_URL"] = redis.redis_url(env, user, redis_password)
    data["REDIS_KEY_PREFIX"] = user.key_prefix
    data["KAFKA_BOOTSTRAP_SERVERS"] = env.kafka.bootstrap_servers
    data["KAFKA_TOPIC_PREFIX"] = env.kafka.topic_prefix
    if service == "auth" and jwt_private_key:
        data[JWT_PRIVATE_KEY] = jwt_private_key
    return data


def connection_secret(env: EnvironmentSpec, service: str, data: Mapping[str, str]) -> dict[str, Any]:
    """The Secret of `connection_data`."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(env.name, service),
            "namespace": env.namespace,
            "labels": dict(labels(env, service)),
        },
        "stringData": dict(data),
    }


def needs_jwt_key(service: str) -> bool:
    return service == "auth"


def labels(env: EnvironmentSpec, service: str) -> Mapping[str, str]:
    return {
        "app.kubernetes.io/managed-by": "pinstack-operator",
        "app.kubernetes.io/component": "connection",
        "pinstack.io/environment": env.name,
        "pinstack.io/service": service,
    }
