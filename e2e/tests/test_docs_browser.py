"""`/docs` works offline: a real headless Chromium, which cannot resolve any host but 127.0.0.1,
loads the page and Swagger UI lists every operation of the gateway's OpenAPI document (its
script and styles come from the gateway; from a CDN the page would stay blank)."""

from __future__ import annotations

import re

import httpx

from pinstack_e2e.browser import rendered_dom
from pinstack_e2e.client import gateway_url


def test_docs_list_every_operation_without_internet_access() -> None:
    document = httpx.get(f"{gateway_url()}/openapi.json", timeout=10).json()
    documented = {(m.upper(), path) for path, operations in document["paths"].items() for m in operations}
    dom = rendered_dom(f"{gateway_url()}/docs")
    # Swagger UI renders one `opblock` per operation: its method, then its path
    shown = set(re.findall(r'opblock-summary-method">([A-Z]+)<.*?data-path="([^"]+)"', dom, flags=re.DOTALL))
    assert len(documented) > 30
    assert shown == documented, f"missing: {sorted(documented - shown)}; unexpected: {sorted(shown - documented)}"
