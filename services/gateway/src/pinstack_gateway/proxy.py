"""Relaying a backend's answer: success bodies pass through untouched (they are already in the
envelope), errors keep the backend's contract message, 5xx become `external service error`."""

from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from starlette.responses import Response

from pinstack_kit.cursors import NEXT_CURSOR_HEADER
from pinstack_kit.envelope import JSON
from pinstack_kit.http_client import ServiceClient, error_from_response


async def forward(client: ServiceClient, method: str, path: str, **kwargs: Any) -> Response:
    upstream = await client.request(method, path, **kwargs)
    if upstream.status_code >= 400:
        raise error_from_response(upstream)
    if upstream.status_code == 204:
        return Response(status_code=204, media_type=JSON)
    return Response(upstream.content, status_code=upstream.status_code, media_type=JSON)


async def forward_page(
    request: Request, client: ServiceClient, path: str, params: dict[str, Any], *, position: tuple[str, ...]
) -> Response:
    """A list read whose backend pages by offset/page number or, given `cursor`, by keyset. The
    body passes through; when there is a next page, `Link: <...>; rel="next"` points at it by
    cursor (stable under inserts) with the client's other parameters, without the `position`
    ones (offset, page) that the cursor replaces."""
    upstream = await client.request("GET", path, params=params)
    if upstream.status_code >= 400:
        raise error_from_response(upstream)
    response = Response(upstream.content, status_code=upstream.status_code, media_type=JSON)
    next_cursor = upstream.headers.get(NEXT_CURSOR_HEADER)
    if next_cursor:
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("cursor", *position)]
        query = urlencode([*kept, ("cursor", next_cursor)])
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    return response
