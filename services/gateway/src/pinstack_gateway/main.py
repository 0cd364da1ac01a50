"""The API gateway: the public, wire-compatible `/api/v1` (contract §1) in front of the services."""

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware import Middleware
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp
from swagger_ui_bundle import swagger_ui_path

from pinstack_contracts.services import BY_NAME
from pinstack_gateway.activity.endpoints import comments_router, likes_router
from pinstack_gateway.auth.endpoints import router as auth_router
from pinstack_gateway.body import read_within_limit
from pinstack_gateway.config import Settings
from pinstack_gateway.feed.endpoints import router as feed_router
from pinstack_gateway.headers import DOCS_ASSETS, ResponseHeaders
from pinstack_gateway.limits import RateLimiter
from pinstack_gateway.notifications.endpoints import router as notifications_router
from pinstack_gateway.openapi import api_routes, build_openapi
from pinstack_gateway.posts.endpoints import router as posts_router
from pinstack_gateway.relations.endpoints import router as relations_router
from pinstack_gateway.response_cache import ResponseCache, ResponseCacheLayer
from pinstack_gateway.sessions import Revocations
from pinstack_gateway.users.endpoints import router as users_router
from pinstack_kit.app import build_app
from pinstack_kit.envelope import JSON, dumps
from pinstack_kit.http_client import ServiceClient
from pinstack_kit.jwt import JWKSVerifier

# Each slice's router carries the full `/api/v1/...` prefix itself, so the route template a
# request matched (metrics label, OpenAPI path) is the public path.
ROUTERS = [
    auth_router,
    users_router,
    posts_router,
    relations_router,
    notifications_router,
    feed_router,
    likes_router,
    comments_router,
]


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods of the resource `path` names: the routes of its most literal matching path
    template. `/users/avatar` is its own resource (PUT), not the `/users/{user_id}` its text also
    matches; Starlette's own `Allow` names only the first matching route's methods."""
    routes = [route for route in api_routes(app.routes) if route.path_regex.match(path)]
    if not routes:
        return []
    template = min(routes, key=lambda route: route.path_format.count("{")).path_format
    return sorted({m for route in routes if route.path_format == template for m in route.methods or ()})


def _allow_every_method(app: FastAPI) -> None:
    """A 405's `Allow` lists every method of the resource."""
    render = app.exception_handlers[StarletteHTTPException]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 405:
            exc = StarletteHTTPException(405, headers={"Allow": ", ".join(allowed_methods(app, request.scope["path"]))})
        response = render(request, exc)
        return await response if inspect.isawaitable(response) else response

    app.add_exception_handler(StarletteHTTPException, http_error)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    cache = ResponseCache(settings.response_cache_seconds, f"{settings.key_prefix}response-cache")

    @asynccontextmanager
    async def clients(app: FastAPI) -> AsyncIterator[None]:
        timeout = settings.upstream_timeout_seconds
        # every service the registry says the gateway calls, at its `<name>_url` setting
        upstreams = {name: getattr(settings, f"{name}_url") for name in BY_NAME["gateway"].calls}
        opened = {name: ServiceClient(name, url, timeout=timeout) for name, url in upstreams.items()}
        for name, client in opened.items():
            setattr(app.state, name, client)
        app.state.verifier = JWKSVerifier(settings.jwks_url, issuer=settings.jwt_issuer)
        app.state.limiter = RateLimiter(app.state.redis, settings)
        app.state.revocations = Revocations(app.state.redis, settings)
        background = [asyncio.create_task(app.state.revocations.keep_writing())]
        if cache.enabled:
            background.append(asyncio.create_task(cache.listen(app.state.redis)))
        # Rate limits and idempotency keys fail open without Redis, and only authenticated
        # requests need it (sessions.py): the gateway keeps serving the rest, so Redis is not a
        # readiness condition of its own.
        app.state.readiness_checks.pop("redis", None)
        app.state.readiness_checks["jwks"] = app.state.verifier.ready
        try:
            yield
        finally:
            for task in [*background, *cache.refreshes]:
                task.cancel()
            for client in opened.values():
                await client.aclose()
            await app.state.verifier.aclose()

    app = build_app(
        settings,
        title="Pinstack API",
        version="1.0.0",
        description="Wire-compatible Pinstack REST API. Every response is a JSON envelope: "
        '`{"status": <code>, "data": ...}` on success, `{"status": <code>, "message": "..."}` on error. '
        "A request outside what this document declares is a 400 (`invalid input` or `validation failed`); "
        "no string may hold a NUL character.",
        routers=ROUTERS,
        use_database=False,
        use_redis=True,
        extra_lifespan=clients,
        dependencies=[Depends(read_within_limit)],
        docs_url=None,  # served below from the packaged Swagger UI
        redoc_url=None,  # ReDoc would load from a CDN
    )
    _allow_every_method(app)
    # Innermost of the middleware, just in front of the router: a hit is still counted, logged
    # and given its headers by the layers outside it.
    app.user_middleware.append(Middleware(ResponseCacheLayer, cache=cache, state=app.state))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = build_openapi(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign, unused-ignore]  # flagged only in some mypy runs

    # Swagger UI from the packaged copy (swagger-ui-bundle-v2), served by the gateway itself: the
    # docs work without internet access (FastAPI's own /docs page loads it from a CDN).
    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_path), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    @app.get("/swagger/doc.json", include_in_schema=False)
    async def swagger_doc() -> Response:
        return Response(dumps(app.openapi()), media_type=JSON)

    @app.get("/swagger/index.html", include_in_schema=False)
    async def swagger_ui() -> Response:
        return RedirectResponse("/docs")

    _outermost(app, ResponseHeaders)
    return app


def _outermost(app: FastAPI, middleware: Callable[[ASGIApp], ASGIApp]) -> None:
    """Wrap even Starlette's ServerErrorMiddleware, so that unhandled-error 500s get it too
    (`add_middleware` only reaches inside it)."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: middleware(build())  # type: ignore[method-assign]
