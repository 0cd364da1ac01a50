"""The gateway's outermost layer: paths without their trailing slash, and headers on every
response: security headers, and the `RateLimit-*` / `Retry-After` fields of the quota a request
spent (recorded by limits.py in the request state)."""

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


_ALWAYS_RAW = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in ALWAYS.items()]
_API_HEADERS = [*_ALWAYS_RAW, (b"content-security-policy", API_CSP.encode("latin-1"))]
_DOCS_HEADERS = [*_ALWAYS_RAW, (b"content-security-policy", DOCS_CSP.encode("latin-1"))]
_NO_STORE = (b"cache-control", b"no-store")
_OURS = frozenset(name for name, _ in [*_API_HEADERS, _NO_STORE])


class ResponseHeaders:
    """The gateway's outermost layer, outside even Starlette's ServerErrorMiddleware so that
    unhandled-error 500s get its headers too (one layer for what were two):

    - `/api/v1/users/` is `/api/v1/users` (the upstream router accepted both), without a redirect;
    - every answer carries the security headers, `Cache-Control: no-store` when it answers an
      authenticated request, and the quota fields of the rate limit the request spent.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        security = _DOCS_HEADERS if path in DOCS_PATHS else _API_HEADERS
        authenticated = any(name == b"authorization" for name, _ in scope.get("headers", ()))
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        state = scope.setdefault("state", {})  # the one the request's `request.state` writes to

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                raw = message.get("headers") or []
                ours = [*security, _NO_STORE] if authenticated else security
                if any(name in _OURS for name, _ in raw):
                    headers = MutableHeaders(scope=message)  # replace, as Starlette's headers do
                    for name, value in ours:
                        headers[name.decode("latin-1")] = value.decode("latin-1")
                    raw = message["headers"]
                else:
                    raw = [*raw, *ours]
                message["headers"] = raw
                quota = quota_headers(state, message["status"])
                if quota:
                    MutableHeaders(scope=message).update(quota)
            await send(message)

        await self.app(scope, receive, send_with_headers)
