"""Headers on every gateway response: security headers, and the `RateLimit-*` / `Retry-After`
fields of the quota a request spent (recorded by limits.py in the request state)."""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pinstack_gateway.limits import quota_headers

# The API only answers JSON: nothing may be loaded, framed or run from it.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI (/docs) loads its bundle from the gateway itself and starts it with an inline script;
# it fetches the document from this origin too.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
DOCS_PATHS = ("/docs",)
DOCS_ASSETS = "/docs/assets"
ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class ResponseHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        authenticated = any(name == b"authorization" for name, _ in scope.get("headers", ()))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in ALWAYS.items():
                    headers[name] = value
                headers["Content-Security-Policy"] = DOCS_CSP if path in DOCS_PATHS else API_CSP
                if authenticated:
                    headers["Cache-Control"] = "no-store"
                headers.update(quota_headers(scope.get("state", {}), message["status"]))
            await send(message)

        await self.app(scope, receive, send_with_headers)
