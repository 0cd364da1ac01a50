"""Dashboard ConfigMaps (Grafana sidecar convention) and alert rules (PrometheusRule or ConfigMap)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from pinstack_operator.builders.spec import EnvironmentSpec

MANAGED_BY = {"app.kubernetes.io/managed-by": "pinstack-operator"}


def _labels(env: EnvironmentSpec, component: str, extra: Mapping[str, str]) -> dict[str, str]:
    return {**extra, **MANAGED_BY, "app.kubernetes.io/component": component, "pinstack.io/environment": env.name}


def dashboard_configmaps(env: EnvironmentSpec, dashboards: Mapping[str, str]) -> list[dict[str, Any]]:
    """One ConfigMap per dashboard, labelled grafana_dashboard="1", in the dashboards namespace."""
    if not env.dashboards_enabled:
        return []
    return [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": f"{env.name}-dashboard-{key}",
                "namespace": env.dashboard_namespace,
                "labels": {**_labels(env, "dashboard", env.dashboards_labels), "grafana_dashboard": "1"},
                "annotations": {"grafana_folder": env.dashboards_folder},
            },
            "data": {f"pinstack-{key}.json": text},
        }
        for key, text in sorted(dashboards.items())
    ]


def prometheus_rule(env: EnvironmentSpec, rules: Mapping[str, Any]) -> dict[str, Any] | None:
    if not env.alerts_enabled:
        return None
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": f"{env.name}-alerts",
            "namespace": env.namespace,
            "labels": _labels(env, "alerts", env.alerts_labels),
        },
        "spec": dict(rules),
    }


def rules_configmap(env: EnvironmentSpec, rules: Mapping[str, Any]) -> dict[str, Any] | None:
    """Without the Prometheus Operator: the same rules as a file for a plain Prometheus."""
    if not env.alerts_enabled:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{env.name}-alerts",
            "namespace": env.namespace,
            "labels": {**_labels(env, "alerts", env.alerts_labels), "prometheus_rule": "1"},
        },
        "data": {"pinstack.rules.yaml": yaml.safe_dump(dict(rules), sort_keys=False, width=200)},
    }
