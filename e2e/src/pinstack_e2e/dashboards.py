"""Every panel of a dashboard shows data: its queries, as Grafana would send them, must return
series from a Prometheus that scrapes Pinstack after a little traffic. The stack tier reads the
dashboards from dashboards/json; the node tier from the ConfigMaps the operator writes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinstack_e2e.client import Api, data_of
from pinstack_e2e.wait import WaitTimeout, eventually

DASHBOARDS = Path(__file__).resolve().parents[3] / "dashboards" / "json"
# What Grafana sends for "All" of a multi-value variable whose values are label values.
VARIABLES = {"service": ".*"}
# The queries rate() over [5m] and Prometheus scrapes every 5 s: a new series needs two scrapes.
DEADLINE_SECONDS = 120.0


def repo_dashboards() -> dict[str, dict[str, Any]]:
    return {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for panel in panels:
        out.append(panel)
        out.extend(_panels(panel.get("panels") or []))
    return out


def substitute(expr: str) -> str:
    """Grafana's template variables ($name, ${name}, [[name]]) replaced by what "All" selects."""

    def value(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in VARIABLES:
            raise KeyError(f"unknown template variable {name!r} in {expr}")
        return VARIABLES[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]", value, expr)


def queries(dashboards: Iterable[tuple[str, dict[str, Any]]]) -> list[tuple[str, str]]:
    """(where, PromQL) for every target of every panel, variables substituted."""
    out = []
    for name, dashboard in dashboards:
        for panel in _panels(dashboard.get("panels") or []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    out.append((f"{name}: {panel.get('title')} [{target.get('refId')}]", substitute(target["expr"])))
    return out


def make_traffic(gateway: str) -> None:
    """Register, log in, post, follow (outbox relays and consumers move) and read twice (caches hit)."""
    api = Api(gateway)
    try:
        author, reader = api.register("dash"), api.register("dash")
        api.relogin(author)
        post = api.create_post(author, title="Dashboards prove themselves")
        api.follow(reader, author)
        for _ in range(3):
            data_of(api.get(f"/users/username/{author.username}"), 200)
            data_of(api.get(f"/users/{author.id}"), 200)
            data_of(api.get(f"/posts/{post['id']}", token=reader.access), 200)
        api.notifications(author)
    finally:
        api.close()


def assert_every_query_has_data(prom: str, qs: list[tuple[str, str]], timeout: float = DEADLINE_SECONDS) -> None:
    """Fails naming every query that returned an error or no series before the deadline."""

    def still_empty() -> list[str]:
        empty = []
        with httpx.Client(base_url=prom, timeout=10.0) as http:
            for where, expr in qs:
                response = http.get("/api/v1/query", params={"query": expr})
                body = response.json()
                if response.status_code != 200 or body.get("status") != "success":
                    empty.append(f"{where}: error {body.get('error', response.text[:200])}: {expr}")
                elif not body["data"]["result"]:
                    empty.append(f"{where}: no series: {expr}")
        return empty

    try:
        eventually(still_empty, lambda empty: not empty, what="data for every panel query", timeout=timeout)
    except WaitTimeout as e:
        missing: list[str] = e.last  # type: ignore[assignment]
        pytest.fail(f"{len(missing)} of {len(qs)} queries never returned data:\n" + "\n".join(missing))
