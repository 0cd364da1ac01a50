"""The PinstackEnvironment spec as typed values, with the CRD's defaults applied."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pinstack_contracts.services import NAMES
from pinstack_operator.builders import managed as managed_builder
from pinstack_operator.builders.managed import ManagedSpec


@dataclass(frozen=True)
class SecretRef:
    name: str
    key: str = "password"
    username_key: str = "username"


@dataclass(frozen=True)
class PostgresSpec:
    host: str
    admin: SecretRef
    port: int = 5432
    ssl_mode: str = "prefer"
    database_prefix: str = "pinstack_"


@dataclass(frozen=True)
class RedisSpec:
    host: str
    admin: SecretRef
    port: int = 6379
    tls: bool = False
    database: int = 0
    key_prefix: str = ""


@dataclass(frozen=True)
class TopicOverride:
    name: str
    partitions: int | None = None
    replication_factor: int | None = None
    retention_ms: int | None = None
    config: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class KafkaSpec:
    bootstrap_servers: str
    topic_prefix: str = ""
    partitions: int = 3
    replication_factor: int | None = None
    retention_ms: int | None = None
    topics: tuple[TopicOverride, ...] = ()


@dataclass(frozen=True)
class EnvironmentSpec:
    name: str
    namespace: str
    services: tuple[str, ...]
    postgres: PostgresSpec
    redis: RedisSpec
    kafka: KafkaSpec
    deletion_policy: str = "Retain"
    dashboards_enabled: bool = True
    dashboards_folder: str = "Pinstack"
    dashboards_namespace: str = ""
    dashboards_labels: Mapping[str, str] = field(default_factory=dict)
    alerts_enabled: bool = True
    alerts_labels: Mapping[str, str] = field(default_factory=dict)
    managed: ManagedSpec | None = None  # Managed mode: the servers run in the namespace

    @property
    def dashboard_namespace(self) -> str:
        return self.dashboards_namespace or self.namespace


class InvalidSpec(ValueError):
    """The spec cannot be reconciled (the CRD schema normally rejects it first)."""


def _ref(raw: Mapping[str, Any] | None, where: str) -> SecretRef:
    if not raw or not raw.get("name"):
        raise InvalidSpec(f"{where}.adminSecretRef.name is required")
    return SecretRef(raw["name"], raw.get("key", "password"), raw.get("usernameKey", "username"))


def parse_spec(name: str, namespace: str, spec: Mapping[str, Any]) -> EnvironmentSpec:
    """Typed spec with defaults; raises InvalidSpec when External mode lacks a server."""
    mode = spec.get("mode", "External")
    if mode == "Managed":
        if any(spec.get(server) for server in managed_builder.SERVERS):
            raise InvalidSpec("spec.postgres, spec.redis and spec.kafka are the operator's in Managed mode")
        spec = {**spec, **managed_builder.external_sections(name, namespace)}
    elif mode != "External":
        raise InvalidSpec(f"spec.mode {mode!r}: expected External or Managed")
    services = tuple(spec.get("services") or ())
    if not services:
        raise InvalidSpec("spec.services must list at least one service")
    unknown = [s for s in services if s not in NAMES]
    if unknown:
        raise InvalidSpec(f"unknown services {unknown}: expected some of {list(NAMES)}")
    pg, rd, kf = spec.get("postgres"), spec.get("redis"), spec.get("kafka")
    if not (pg and rd and kf):
        raise InvalidSpec("spec.postgres, spec.redis and spec.kafka are required when spec.mode is External")
    defaults = kf.get("topicDefaults") or {}
    topics = tuple(
        TopicOverride(
            name=t["name"],
            partitions=t.get("partitions"),
            replication_factor=t.get("replicationFactor"),
            retention_ms=t.get("retentionMs"),
            config=dict(t.get("config") or {}),
        )
        for t in kf.get("topics") or ()
    )
    dashboards = spec.get("dashboards") or {}
    alerts = spec.get("alerts") or {}
    return EnvironmentSpec(
        name=name,
        namespace=namespace,
        services=tuple(sorted(set(services), key=NAMES.index)),
        deletion_policy=spec.get("deletionPolicy", "Retain"),
        postgres=PostgresSpec(
            host=pg["host"],
            admin=_ref(pg.get("adminSecretRef"), "spec.postgres"),
            port=int(pg.get("port", 5432)),
            ssl_mode=pg.get("sslMode", "prefer"),
            database_prefix=pg.get("databasePrefix", "pinstack_"),
        ),
        redis=RedisSpec(
            host=rd["host"],
            admin=_ref(rd.get("adminSecretRef"), "spec.redis"),
            port=int(rd.get("port", 6379)),
            tls=bool(rd.get("tls", False)),
            database=int(rd.get("database", 0)),
            key_prefix=rd.get("keyPrefix", ""),
        ),
        kafka=KafkaSpec(
            bootstrap_servers=kf["bootstrapServers"],
            topic_prefix=kf.get("topicPrefix", ""),
            partitions=int(defaults.get("partitions", 3)),
            replication_factor=defaults.get("replicationFactor"),
            retention_ms=defaults.get("retentionMs"),
            topics=topics,
        ),
        dashboards_enabled=bool(dashboards.get("enabled", True)),
        dashboards_folder=dashboards.get("folder", "Pinstack"),
        dashboards_namespace=dashboards.get("namespace", ""),
        dashboards_labels=dict(dashboards.get("labels") or {}),
        alerts_enabled=bool(alerts.get("enabled", True)),
        alerts_labels=dict(alerts.get("labels") or {}),
        managed=managed_builder.parse(spec.get("managed")) if mode == "Managed" else None,
    )
