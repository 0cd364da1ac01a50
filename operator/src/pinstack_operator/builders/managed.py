"""Managed mode: PostgreSQL, Redis and Kafka run in the environment's namespace (dev clusters).

Per server one single-replica StatefulSet with its volume and one headless Service (its stable
in-cluster name), owned by the environment. The admin passwords live in `<env>-managed-admin`,
generated once and never owned (with deletionPolicy Retain the volumes outlive the environment,
and a new environment of the same name must be able to open them). Once every server is ready the
provisioning is the External mode's, against these in-cluster names: the operator runs in the
cluster (its chart) to reach them.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SERVERS = ("postgres", "redis", "kafka")
PORTS = {"postgres": 5432, "redis": 6379, "kafka": 9092}
SPEC_HASH = "pinstack.io/spec-hash"  # what the object was built from: the API server adds defaults to specs
ADMINS = {"postgres": "postgres", "redis": "default"}  # the admin user of each server with a password


def password_key(server: str) -> str:
    """The admin Secret holds `<server>-username` and `<server>-password` per server of ADMINS."""
    return f"{server}-password"


def username_key(server: str) -> str:
    return f"{server}-username"


# The servers run as this uid with a read-only root (the images of images/<server> are built for
# it: scripts/images.py); their data is on the claim, scratch files on an emptyDir at /tmp.
UID = 10001
SCRATCH = "/tmp"  # noqa: S108 (an emptyDir of the pod, not the host's /tmp)
# The operator's defaults when spec.managed.images leaves one out: the chart passes the refs of
# `make images` in these variables (charts/pinstack-operator values managedImages).
IMAGE_ENV = {server: f"PINSTACK_MANAGED_{server.upper()}_IMAGE" for server in SERVERS}
FALLBACK_IMAGES = {
    "postgres": "localhost/pinstack/postgres:latest",
    "redis": "localhost/pinstack/redis:latest",
    "kafka": "localhost/pinstack/kafka:latest",
}


def default_image(server: str) -> str:
    return os.environ.get(IMAGE_ENV[server]) or FALLBACK_IMAGES[server]


@dataclass(frozen=True)
class ManagedSpec:
    postgres_image: str = FALLBACK_IMAGES["postgres"]
    redis_image: str = FALLBACK_IMAGES["redis"]
    kafka_image: str = FALLBACK_IMAGES["kafka"]
    storage: str = "1Gi"
    storage_class: str | None = None


def parse(raw: Mapping[str, Any] | None) -> ManagedSpec:
    raw = raw or {}
    images = raw.get("images") or {}
    defaults = ManagedSpec()
    return ManagedSpec(
        postgres_image=images.get("postgres") or default_image("postgres"),
        redis_image=images.get("redis") or default_image("redis"),
        kafka_image=images.get("kafka") or default_image("kafka"),
        storage=raw.get("storage", defaults.storage),
        storage_class=raw.get("storageClassName"),
    )


def admin_secret_name(env_name: str) -> str:
    return f"{env_name}-managed-admin"


def workload_name(env_name: str, server: str) -> str:
    return f"{env_name}-{server}"


def host(env_name: str, namespace: str, server: str) -> str:
    return f"{workload_name(env_name, server)}.{namespace}.svc"


def labels(env_name: str, server: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": server,
        "app.kubernetes.io/instance": env_name,
        "app.kubernetes.io/component": "managed-server",
        "app.kubernetes.io/part-of": "pinstack",
        "app.kubernetes.io/managed-by": "pinstack-operator",
    }


def _selector(env_name: str, server: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": server, "app.kubernetes.io/instance": env_name}


def admin_secret(env_name: str, namespace: str, passwords: Mapping[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": admin_secret_name(env_name),
            "namespace": namespace,
            "labels": {**labels(env_name, "admin"), "app.kubernetes.io/component": "managed-credentials"},
        },
        "stringData": {
            **{username_key(server): user for server, user in ADMINS.items()},
            **{password_key(server): passwords[server] for server in ADMINS},
        },
    }


def external_sections(env_name: str, namespace: str) -> dict[str, Any]:
    """The spec's External-mode sections that point at this environment's managed servers."""
    secret = admin_secret_name(env_name)

    def admin(server: str) -> dict[str, str]:
        return {"name": secret, "key": password_key(server), "usernameKey": username_key(server)}

    def at(server: str) -> str:
        return host(env_name, namespace, server)

    return {
        "postgres": {
            "host": at("postgres"),
            "port": PORTS["postgres"],
            "sslMode": "disable",
            "adminSecretRef": admin("postgres"),
        },
        "redis": {"host": at("redis"), "port": PORTS["redis"], "adminSecretRef": admin("redis")},
        "kafka": {"bootstrapServers": f"{at('kafka')}:{PORTS['kafka']}", "topicDefaults": {"replicationFactor": 1}},
    }


def _hashed(obj: dict[str, Any]) -> dict[str, Any]:
    digest = hashlib.sha256(json.dumps(obj["spec"], sort_keys=True).encode()).hexdigest()[:16]
    obj["metadata"].setdefault("annotations", {})[SPEC_HASH] = digest
    return obj


def service(env_name: str, namespace: str, server: str) -> dict[str, Any]:
    """Headless: the StatefulSet's governing Service; its name resolves to the (ready) pod."""
    return _hashed(
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": workload_name(env_name, server),
                "namespace": namespace,
                "labels": labels(env_name, server),
            },
            "spec": {
                "clusterIP": "None",
                "selector": _selector(env_name, server),
                "ports": [{"name": server, "port": PORTS[server], "targetPort": PORTS[server]}],
            },
        }
    )


# The ACL users the operator makes live in an ACL file on the volume (it runs ACL SAVE after each
# change), so a restarted Redis serves the services at once instead of refusing them until the
# next reconcile. The admin (default) user's line is written from the Secret at every start, so
# the file never holds an old admin password, and never `nopass`.
REDIS_START = """set -eu
acl=/data/users.acl
hash=$(printf %s "$REDIS_PASSWORD" | sha256sum | cut -d' ' -f1)
echo "user default on #$hash ~* &* +@all" > "$acl.new"
if [ -f "$acl" ]; then grep -v '^user default ' "$acl" >> "$acl.new" || true; fi
mv "$acl.new" "$acl"
exec redis-server --aclfile "$acl" --appendonly yes --dir /data "$@"
"""


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def _container(env_name: str, namespace: str, server: str, spec: ManagedSpec) -> dict[str, Any]:
    secret = admin_secret_name(env_name)
    port = PORTS[server]
    probe: dict[str, Any]
    if server == "postgres":
        image, mount = spec.postgres_image, "/var/lib/postgresql/data"
        env = [
            _secret_env("POSTGRES_PASSWORD", secret, password_key("postgres")),
            {"name": "PGDATA", "value": f"{mount}/pgdata"},
        ]
        command: list[str] | None = None
        probe = {"exec": {"command": ["pg_isready", "-U", ADMINS["postgres"], "-h", "127.0.0.1"]}}
    elif server == "redis":
        image, mount = spec.redis_image, "/data"
        env = [_secret_env("REDIS_PASSWORD", secret, password_key("redis"))]
        command = ["sh", "-c", REDIS_START]
        probe = {"exec": {"command": ["sh", "-c", 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping']}}
    else:
        image, mount = spec.kafka_image, "/var/lib/kafka/data"
        settings = {
            "NODE_ID": "1",
            "PROCESS_ROLES": "broker,controller",
            "LISTENERS": f"PLAINTEXT://:{port},CONTROLLER://:9093",
            "ADVERTISED_LISTENERS": f"PLAINTEXT://{host(env_name, namespace, server)}:{port}",
            "CONTROLLER_LISTENER_NAMES": "CONTROLLER",
            "LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "CONTROLLER_QUORUM_VOTERS": "1@localhost:9093",
            "OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
            "TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
            "TRANSACTION_STATE_LOG_MIN_ISR": "1",
            "AUTO_CREATE_TOPICS_ENABLE": "false",  # the operator creates every topic
            "LOG_DIRS": f"{mount}/logs",
        }
        env = [{"name": f"KAFKA_{k}", "value": v} for k, v in settings.items()]
        command = None
        probe = {"tcpSocket": {"port": port}}
    container: dict[str, Any] = {
        "name": server,
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "ports": [{"name": server, "containerPort": port}],
        # a first start formats or initialises the volume (Kafka's JVM: tens of seconds on 2 cores);
        # liveness begins only once the server has answered
        "startupProbe": {**probe, "periodSeconds": 2, "failureThreshold": 150},
        "readinessProbe": {**probe, "periodSeconds": 5, "failureThreshold": 3},
        "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 10, "failureThreshold": 6},
        "volumeMounts": [{"name": "data", "mountPath": mount}, {"name": "tmp", "mountPath": SCRATCH}],
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi" if server != "kafka" else "768Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
    }
    if command:
        container["command"] = command
    return container


def statefulset(env_name: str, namespace: str, server: str, spec: ManagedSpec, deletion_policy: str) -> dict[str, Any]:
    claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": spec.storage}}}
    if spec.storage_class:
        claim["storageClassName"] = spec.storage_class
    return _hashed(
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {
                "name": workload_name(env_name, server),
                "namespace": namespace,
                "labels": labels(env_name, server),
            },
            "spec": {
                "serviceName": workload_name(env_name, server),
                "replicas": 1,
                "selector": {"matchLabels": _selector(env_name, server)},
                # The volumes follow the deletionPolicy: Retain keeps the data for a next environment.
                "persistentVolumeClaimRetentionPolicy": {
                    "whenDeleted": "Delete" if deletion_policy == "Delete" else "Retain",
                    "whenScaled": "Retain",
                },
                "template": {
                    "metadata": {"labels": labels(env_name, server)},
                    "spec": {
                        # the restricted Pod Security level, as the services' pods
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": UID,
                            "runAsGroup": UID,
                            "fsGroup": UID,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "enableServiceLinks": False,
                        "automountServiceAccountToken": False,
                        "containers": [_container(env_name, namespace, server, spec)],
                        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}],
                    },
                },
                "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": claim}],
            },
        }
    )
