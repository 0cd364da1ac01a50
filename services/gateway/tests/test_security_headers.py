"""Security headers on every gateway answer, and no `Server` header naming the software."""

from __future__ import annotations

import httpx
import pytest
from gateway_contract import Account

pytestmark = pytest.mark.contract

ALWAYS = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def assert_hardened(response: httpx.Response) -> None:
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    assert "server" not in response.headers, response.headers


class TestSecurityHeaders:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/healthz"),
            ("GET", "/api/v1/posts/list"),
            ("GET", "/api/v1/no-such-route"),
            ("DELETE", "/api/v1/posts/list"),
            ("POST", "/api/v1/auth/login"),
            ("GET", "/api/v1/users/abc"),
        ],
    )
    def test_every_answer_is_hardened_and_json_gets_a_strict_csp(
        self, server: httpx.Client, method: str, path: str
    ) -> None:
        response = server.request(method, path)
        assert_hardened(response)
        csp = response.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert "cache-control" not in response.headers  # public answers may be cached

    def test_authenticated_answers_are_not_stored(self, server: httpx.Client, account: Account) -> None:
        for path in ("/api/v1/notification/unread-count", "/api/v1/feed"):
            response = server.get(path, headers=account.headers)
            assert response.status_code == 200
            assert_hardened(response)
            assert response.headers["cache-control"] == "no-store"
        refused = server.get("/api/v1/notification/unread-count", headers={"Authorization": "Bearer nope"})
        assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"

    def test_swagger_ui_loads_its_bundle_from_the_gateway(self, server: httpx.Client) -> None:
        response = server.get("/docs")
        assert response.status_code == 200
        assert_hardened(response)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self' 'unsafe-inline';" in csp
        assert "https:" not in csp and "https:" not in response.text  # nothing from another origin
        for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
            assert asset in response.text
            assert server.get(asset).status_code == 200
        assert "frame-ancestors 'none'" in csp
        assert server.get("/openapi.json").headers["content-security-policy"].startswith("default-src 'none'")
