"""Every dashboard panel shows data: each query of dashboards/json/*.json, sent to the Prometheus
that scrapes the running stack (`make up`), returns at least one series once a little traffic went
through the public gateway.

The operator dashboard is left out: nothing runs the operator beside the dev stack (an operator
test checks that every metric it names is exported by the operator's /metrics).
"""

from __future__ import annotations

import os

import httpx
import pytest

from pinstack_e2e.dashboards import assert_every_query_has_data, make_traffic, queries, repo_dashboards

pytestmark = pytest.mark.e2e

SKIPPED = {"operator"}


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


def dashboard_queries() -> list[tuple[str, str]]:
    return queries((name, d) for name, d in repo_dashboards().items() if name not in SKIPPED)


def test_dashboard_queries_cover_every_panel() -> None:
    qs = dashboard_queries()
    assert len(qs) >= 15, qs
    for where, expr in qs:
        assert "$" not in expr and "[[" not in expr, f"{where}: {expr}"


def test_every_dashboard_query_returns_data() -> None:
    prom, gateway = _urls()
    make_traffic(gateway)
    assert_every_query_has_data(prom, dashboard_queries())
