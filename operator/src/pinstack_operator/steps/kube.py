"""Kubernetes objects: create when missing, replace when data, labels or owner differ; never
rewrite an object that is already in line."""

from __future__ import annotations

import base64
import functools
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException


@functools.cache
def api() -> client.ApiClient:
    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG") or None)
    return client.ApiClient()


def core() -> Any:  # the generated client's bodies are plain dicts here
    return client.CoreV1Api(api())


def custom() -> Any:
    return client.CustomObjectsApi(api())


def read_secret(namespace: str, name: str) -> dict[str, str] | None:
    """The decoded data of a Secret, or None when it does not exist."""
    try:
        secret = core().read_namespaced_secret(name, namespace)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    return {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}


def prometheus_rules_served() -> bool:
    """Whether the Prometheus Operator's PrometheusRule CRD is installed."""
    try:
        client.ApiextensionsV1Api(api()).read_custom_resource_definition("prometheusrules.monitoring.coreos.com")
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def crd_uid(name: str) -> str | None:
    """The uid of a CustomResourceDefinition (None: it does not exist)."""
    try:
        crd = client.ApiextensionsV1Api(api()).read_custom_resource_definition(name)
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    meta = api().sanitize_for_serialization(crd)["metadata"]
    return str(meta["uid"])


def _in_line(actual: Mapping[str, Any], desired: Mapping[str, Any], field: str | None) -> bool:
    meta, want = actual.get("metadata") or {}, desired["metadata"]
    for key in ("labels", "annotations"):
        have = meta.get(key) or {}
        if any(have.get(k) != v for k, v in (want.get(key) or {}).items()):
            return False
    owners = {o.get("uid") for o in meta.get("ownerReferences") or ()}
    if any(o["uid"] not in owners for o in want.get("ownerReferences") or ()):
        return False
    return field is None or actual.get(field) == desired.get(field)


def _merged(actual: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    meta = dict(actual["metadata"])
    want = desired["metadata"]
    for key in ("labels", "annotations"):
        if want.get(key):
            meta[key] = {**(meta.get(key) or {}), **want[key]}
    if want.get("ownerReferences"):
        meta["ownerReferences"] = want["ownerReferences"]
    return {**desired, "metadata": meta}


# kind -> (API class, the generated client's method suffix); PrometheusRule is a custom object.
_BUILTIN: dict[str, tuple[Any, str]] = {
    "Secret": (client.CoreV1Api, "secret"),
    "ConfigMap": (client.CoreV1Api, "config_map"),
    "Service": (client.CoreV1Api, "service"),
    "StatefulSet": (client.AppsV1Api, "stateful_set"),
}
_RULES = ("monitoring.coreos.com", "v1")


class _Kind:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def _call(self, verb: str, namespace: str, *args: Any) -> Any:
        """`verb`_namespaced_<kind>: the builtin clients take (name, namespace[, body]) or
        (namespace, body) for create; the custom-objects client (group, version, namespace,
        plural, ...)."""
        if self.kind in _BUILTIN:
            cls, suffix = _BUILTIN[self.kind]
            method = getattr(cls(api()), f"{verb}_namespaced_{suffix}")
            if verb == "create":
                return method(namespace, *args)
            return method(args[0], namespace, *args[1:])
        verb = "get" if verb == "read" else verb
        method = getattr(custom(), f"{verb}_namespaced_custom_object")
        return method(*_RULES, namespace, "prometheusrules", *args)

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj = self._call("read", namespace, name)
        except ApiException as e:
            if e.status == 404:
                return None
            raise
        out: dict[str, Any] = obj if isinstance(obj, dict) else api().sanitize_for_serialization(obj)
        return out

    def create(self, namespace: str, body: dict[str, Any]) -> None:
        self._call("create", namespace, body)

    def replace(self, namespace: str, name: str, body: dict[str, Any]) -> None:
        self._call("replace", namespace, name, body)

    def delete(self, namespace: str, name: str) -> bool:
        try:
            self._call("delete", namespace, name)
        except ApiException as e:
            if e.status == 404:
                return False
            raise
        return True


def encode_secret(desired: dict[str, Any]) -> dict[str, Any]:
    """stringData -> data (base64), so the Secret compares with what the API server returns."""
    body = {k: v for k, v in desired.items() if k != "stringData"}
    body["type"] = desired.get("type", "Opaque")
    body["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in desired.get("stringData", {}).items()}
    return body


def ensure_object(desired: dict[str, Any]) -> list[str]:
    """Create, or replace when different; returns the change made (empty list: none)."""
    kind = desired["kind"]
    if kind == "Secret":
        desired = encode_secret(desired)
    # What is compared besides labels, annotations and owner: workloads and Services carry a
    # hash of their spec in an annotation instead (the API server fills in defaults).
    field = {"PrometheusRule": "spec", "Service": None, "StatefulSet": None}.get(kind, "data")
    meta = desired["metadata"]
    ops = _Kind(kind)
    actual = ops.get(meta["namespace"], meta["name"])
    if actual is None:
        ops.create(meta["namespace"], desired)
        return [f"created {kind} {meta['namespace']}/{meta['name']}"]
    if _in_line(actual, desired, field):
        return []
    ops.replace(meta["namespace"], meta["name"], _merged(actual, desired))
    return [f"updated {kind} {meta['namespace']}/{meta['name']}"]


def delete_object(kind: str, namespace: str, name: str) -> list[str]:
    return [f"deleted {kind} {namespace}/{name}"] if _Kind(kind).delete(namespace, name) else []


CONNECTION_VERSION = "pinstack.io/connection-version"


def roll_deployments(namespace: str, selector: str, version: str) -> list[str]:
    """Put `version` on the pod template of every Deployment matching `selector`: a rolling
    restart, because a pod reads its connection Secret once, into its environment, at start."""
    apps = client.AppsV1Api(api())
    changes = []
    found = api().sanitize_for_serialization(apps.list_namespaced_deployment(namespace, label_selector=selector))
    for deployment in found.get("items") or []:
        name = deployment["metadata"]["name"]
        if deployment["spec"]["template"].get("metadata", {}).get("annotations", {}).get(CONNECTION_VERSION) == version:
            continue
        if not ran_before(deployment):
            # no pod ran on an old Secret (a first install waits for it): the containers that
            # start read the new one, and a rollout now would only double the pods
            continue
        patch = {"spec": {"template": {"metadata": {"annotations": {CONNECTION_VERSION: version}}}}}
        apps.patch_namespaced_deployment(name, namespace, patch)
        changes.append(f"restarted Deployment {namespace}/{name} (new connection Secret)")
    return changes


def ran_before(deployment: dict[str, Any]) -> bool:
    """Whether the Deployment's pods ever ran (on some Secret): available now, or available
    before (its Available condition turned False well after it was created; a first install's is
    False from its first sync). Pods that ran on a Secret that is gone now stay unready without a
    rollout, and must get one even though none of them is available."""
    status = deployment.get("status") or {}
    if status.get("availableReplicas"):
        return True
    created = deployment["metadata"].get("creationTimestamp")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Available" and created and condition.get("lastTransitionTime"):
            became = _time(condition["lastTransitionTime"]) - _time(created)
            return condition.get("status") == "True" or became.total_seconds() > FIRST_SYNC_SECONDS
    return False


# A Deployment's first Available condition is written at its first sync, within seconds.
FIRST_SYNC_SECONDS = 60.0


def _time(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value.replace("Z", "+00:00"))


# How long after a Deployment's rollout completed its old pods may still be finishing requests
# (the services drain for a few seconds after SIGTERM) on connections they opened before.
ROLLOUT_SETTLE_SECONDS = 30.0


def unsettled(namespace: str, selector: str, now: datetime | None = None) -> set[str]:
    """The `app.kubernetes.io/name` of each Deployment matching `selector` whose pods are not all
    of its current template, available, and so for ROLLOUT_SETTLE_SECONDS."""
    apps = client.AppsV1Api(api())
    found = api().sanitize_for_serialization(apps.list_namespaced_deployment(namespace, label_selector=selector))
    now = now or datetime.now(UTC)
    return {
        (d["metadata"].get("labels") or {}).get("app.kubernetes.io/name", d["metadata"]["name"])
        for d in found.get("items") or []
        if not rollout_settled(d, now)
    }


def rollout_settled(deployment: dict[str, Any], now: datetime) -> bool:
    wanted = deployment["spec"].get("replicas", 1)
    status = deployment.get("status") or {}
    if (
        status.get("observedGeneration", 0) < deployment["metadata"].get("generation", 0)
        or status.get("updatedReplicas", 0) != wanted
        or status.get("availableReplicas", 0) != wanted
        or status.get("replicas", 0) != wanted  # old pods still counted
    ):
        return False
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("lastUpdateTime"):
            done = _time(condition["lastUpdateTime"])
            return (now - done).total_seconds() >= ROLLOUT_SETTLE_SECONDS
    return True


def ready_replicas(namespace: str, name: str) -> int:
    """Ready pods of a StatefulSet (0 when it does not exist)."""
    found = _Kind("StatefulSet").get(namespace, name)
    return int(((found or {}).get("status") or {}).get("readyReplicas") or 0)


def list_environments() -> list[dict[str, Any]]:
    """Every PinstackEnvironment in the cluster (the owner of a Kafka topic prefix is among them)."""
    found = custom().list_cluster_custom_object("pinstack.io", "v1alpha1", "pinstackenvironments")
    items: list[dict[str, Any]] = found.get("items") or []
    return items
