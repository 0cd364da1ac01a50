"""Every dashboard panel shows data: each query of dashboards/json/*.json, sent to the Prometheus
that scrapes the running stack (`make up`), returns at least one series once a little traffic went
through the public gateway.

The operator dashboard is left out: nothing runs the operator beside the dev stack (an operator
test checks that every metric it names is exported by the operator's /metrics).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from pinstack_e2e.client import Api, data_of
from pinstack_e2e.wait import WaitTimeout, eventually

pytestmark = pytest.mark.e2e

DASHBOARDS = Path(__file__).resolve().parents[2] / "dashboards" / "json"
SKIPPED = {"operator"}
# What Grafana sends for "All" of a multi-value variable whose values are label values.
VARIABLES = {"service": ".*"}
# The queries rate() over [5m] and Prometheus scrapes every 5 s: a new series needs two scrapes.
DEADLINE_SECONDS = 120.0


def _urls() -> tuple[str, str]:
    prom, gateway = os.environ.get("PINSTACK_PROM_URL", ""), os.environ.get("PINSTACK_GATEWAY_URL", "")
    if not prom or not gateway:
        pytest.skip('PINSTACK_PROM_URL and PINSTACK_GATEWAY_URL are not set: `eval "$(python3 scripts/stack.py env)"`')
    for name, url in (("Prometheus", f"{prom}/-/ready"), ("the gateway", f"{gateway}/healthz")):
        try:
            ok = httpx.get(url, timeout=3.0).status_code == 200
        except httpx.HTTPError as e:
            pytest.skip(f"{name} at {url} is unreachable ({type(e).__name__}): start the stack with `make up`")
        if not ok:
            pytest.skip(f"{name} at {url} is not ready: start the stack with `make up`")
    return prom.rstrip("/"), gateway.rstrip("/")


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


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) for every target of every panel, variables substituted."""
    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        if path.stem in SKIPPED:
            continue
        for panel in _panels(json.loads(path.read_text()).get("panels") or []):
            for target in panel.get("targets") or []:
                if target.get("expr"):
                    where = f"{path.stem}: {panel.get('title')} [{target.get('refId')}]"
                    queries.append((where, substitute(target["expr"])))
    return queries


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


def test_dashboard_queries_cover_every_panel() -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15, queries
    for where, expr in queries:
        assert "$" not in expr and "[[" not in expr, f"{where}: {expr}"


def test_every_dashboard_query_returns_data() -> None:
    prom, gateway = _urls()
    make_traffic(gateway)
    queries = dashboard_queries()

    def still_empty() -> list[str]:
        empty = []
        with httpx.Client(base_url=prom, timeout=10.0) as http:
            for where, expr in queries:
                response = http.get("/api/v1/query", params={"query": expr})
                body = response.json()
                if response.status_code != 200 or body.get("status") != "success":
                    empty.append(f"{where}: error {body.get('error', response.text[:200])}: {expr}")
                elif not body["data"]["result"]:
                    empty.append(f"{where}: no series: {expr}")
        return empty

    try:
        eventually(still_empty, lambda empty: not empty, what="data for every panel query", timeout=DEADLINE_SECONDS)
    except WaitTimeout as e:
        missing: list[str] = e.last  # type: ignore[assignment]
        pytest.fail(f"{len(missing)} of {len(queries)} queries never returned data:\n" + "\n".join(missing))
