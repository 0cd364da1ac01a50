"""Monitoring on the node: the node's Prometheus (cluster.py; it finds the pods through the API
server) scrapes every pod of the platform and the operator, every panel of the dashboards the
operator wrote as ConfigMaps returns data from those pods after real traffic, and the alert rules
the operator publishes are loaded and evaluated there."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import yaml

from pinstack_e2e.dashboards import assert_every_query_has_data, make_traffic, queries
from pinstack_e2e.node import RELEASE, SERVICES, Node, Platform, wait_for

OPERATOR_NAMESPACE = "pinstack-system"


@pytest.fixture(scope="module")
def prom(node: Node) -> httpx.Client:
    assert node.prometheus, "cluster.py up --node reported no Prometheus"
    return httpx.Client(base_url=node.prometheus, timeout=10.0)


def _get(prom: httpx.Client, path: str, **params: str) -> Any:
    response = prom.get(path, params=params)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:300]}"
    return response.json()["data"]


def test_every_pod_of_the_platform_and_the_operator_is_scraped(
    node: Node, platform: Platform, prom: httpx.Client
) -> None:
    labels = [d["metadata"]["labels"] for d in node.json("-n", platform.namespace, "get", "deployments")["items"]]
    expected = {
        m["app.kubernetes.io/name"] + ("-worker" if m["app.kubernetes.io/component"] == "worker" else "")
        for m in labels
    } | {"pinstack-operator"}
    assert set(SERVICES) < expected, expected  # every service's API, and some workers

    def scraped() -> dict[str, str]:
        """job -> health of the targets in the platform's namespace and the operator's."""
        return {
            t["labels"]["job"]: t["health"]
            for t in _get(prom, "/api/v1/targets", state="active")["activeTargets"]
            if t["labels"].get("namespace") in (platform.namespace, OPERATOR_NAMESPACE)
        }

    wait_for(
        lambda: expected <= {job for job, health in scraped().items() if health == "up"},
        f"every service, worker and the operator scraped and up ({sorted(expected)})",
        120,
        lambda: json.dumps(scraped(), sort_keys=True),
    )
    assert set(scraped()) == expected, "a target of no chart's monitor was scraped"


def _operator_objects(node: Node, platform: Platform, selector: str) -> list[dict[str, Any]]:
    found = node.json(
        "-n", platform.namespace, "get", "configmaps", "-l", f"{selector},pinstack.io/environment={RELEASE}"
    )
    return list(found["items"])


def test_every_panel_of_the_operators_dashboards_has_data_from_the_pods(
    node: Node, platform: Platform, prom: httpx.Client
) -> None:
    maps = _operator_objects(node, platform, "grafana_dashboard=1")
    dashboards = [(m["metadata"]["name"], json.loads(text)) for m in maps for text in m["data"].values()]
    assert {n.rsplit("-", 1)[-1] for n, _ in dashboards} >= {
        "overview",
        "red",
        "kafka",
        "cache",
        "database",
        "operator",
    }
    qs = queries(dashboards)
    assert len(qs) >= 20, qs
    make_traffic(platform.gateway)
    assert_every_query_has_data(str(prom.base_url).rstrip("/"), qs)
    # the data is the pods': the platform's namespace carries the requests the traffic made
    served = _get(prom, "/api/v1/query", query=f'sum(http_requests_total{{namespace="{platform.namespace}"}})')
    assert served["result"] and float(served["result"][0]["value"][1]) > 0, served


def test_the_operators_alert_rules_are_loaded_and_evaluated(node: Node, platform: Platform, prom: httpx.Client) -> None:
    (rules_map,) = _operator_objects(node, platform, "prometheus_rule=1")
    published = {
        (g["name"], r.get("alert") or r.get("record"))
        for text in rules_map["data"].values()
        for g in yaml.safe_load(text)["groups"]
        for r in g["rules"]
    }
    assert published

    def loaded() -> dict[tuple[str, str], str]:
        return {(g["name"], r["name"]): r["health"] for g in _get(prom, "/api/v1/rules")["groups"] for r in g["rules"]}

    wait_for(
        lambda: all(loaded().get(rule) == "ok" for rule in published),
        f"the {len(published)} rules of {rules_map['metadata']['name']} loaded and evaluated (health ok)",
        60,
        lambda: json.dumps({f"{g}/{r}": h for (g, r), h in loaded().items()}),
    )
