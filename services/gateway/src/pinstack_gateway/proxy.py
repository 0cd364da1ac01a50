"""Relaying a backend's answer: success bodies pass through untouched (they are already in the
envelope), errors keep the backend's contract message, 5xx become `external service error`."""

from typing import Any

from starlette.responses import Response

from pinstack_kit.envelope import JSON
from pinstack_kit.http_client import ServiceClient, error_from_response


async def forward(client: ServiceClient, method: str, path: str, **kwargs: Any) -> Response:
    upstream = await client.request(method, path, **kwargs)
    if upstream.status_code >= 400:
        raise error_from_response(upstream)
    if upstream.status_code == 204:
        return Response(status_code=204, media_type=JSON)
    return Response(upstream.content, status_code=upstream.status_code, media_type=JSON)
