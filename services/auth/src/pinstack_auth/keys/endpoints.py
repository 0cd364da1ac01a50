from fastapi import APIRouter
from starlette.responses import Response

from pinstack_auth.deps import KeysDep
from pinstack_kit.envelope import JSON, dumps

router = APIRouter(tags=["keys"])


@router.get("/.well-known/jwks.json", summary="Public keys that verify Pinstack tokens (RFC 7517)")
async def jwks(keys: KeysDep) -> Response:
    # A plain JWKS document (no envelope): verifiers expect the standard shape.
    return Response(dumps(keys.jwks()), media_type=JSON, headers={"cache-control": "public, max-age=300"})
