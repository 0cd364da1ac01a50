"""`Idempotency-Key` on the writes a client may retry after a lost answer (create post, comment,
like, follow).

The first request with a key claims it in Redis (`SET NX`, a short lock TTL in case this process
dies), runs, and stores its answer for `idempotency_ttl_seconds` under the caller's id. A retry
with the same key and the same request (method, path and decoded body, hashed) gets the stored
answer back with `Idempotent-Replayed: true` and repeats no write; the same key on a different
request is 422; a retry while the first is still running is 409. Answers of 5xx (nothing
decided, the client should retry) are not kept. Redis unreachable: the request runs without the
guarantee (fail open), as the rate limits do.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import orjson
from fastapi import Depends, Header, Request
from pydantic import BaseModel
from redis.exceptions import RedisError
from starlette.responses import Response

from pinstack_gateway.limits import REDIS_UNAVAILABLE
from pinstack_kit.envelope import JSON, error_response
from pinstack_kit.errors import AppError, BadRequest, Conflict

log = logging.getLogger("pinstack.gateway.idempotency")

MAX_KEY_LENGTH = 255
PENDING = b"pending"

# KEYS[1] the record; ARGV[1] the pending marker; ARGV[2] lock TTL in seconds.
# Returns nil when this request claimed the key, else the stored record.
_CLAIM = """
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then
  return false
end
return redis.call('GET', KEYS[1])
"""


class KeyReused(AppError):
    status = 422
    message = "idempotency key was already used for a different request"


class InProgress(Conflict):
    message = "request with this idempotency key is in progress"


async def _idempotency_key(
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Any unique string (≤ 255 characters) per intended write: a retry with the same key "
            "within 24 h replays the first answer instead of writing again",
        ),
    ] = None,
) -> str | None:
    if idempotency_key is None:
        return None
    if not 1 <= len(idempotency_key) <= MAX_KEY_LENGTH:
        raise BadRequest()
    return idempotency_key


IdempotencyKey = Annotated[str | None, Depends(_idempotency_key)]


def fingerprint(request: Request, body: BaseModel | None) -> str:
    payload = body.model_dump_json().encode() if body is not None else b""
    return hashlib.sha256(b"%s %s\n%s" % (request.method.encode(), request.url.path.encode(), payload)).hexdigest()


async def idempotent(
    request: Request,
    key: str | None,
    user_id: int,
    body: BaseModel | None,
    write: Callable[[], Awaitable[Response]],
) -> Response:
    if key is None:
        return await write()
    app = request.app
    settings = app.state.settings
    record_key = f"{settings.key_prefix}idem:{user_id}:{hashlib.sha256(key.encode()).hexdigest()}"
    print_ = fingerprint(request, body)
    pending = PENDING + b":" + print_.encode()
    redis = app.state.redis
    try:
        claim = redis.register_script(_CLAIM)
        existing = await claim(keys=[record_key], args=[pending, settings.idempotency_lock_seconds])
    except (RedisError, OSError) as exc:
        REDIS_UNAVAILABLE.labels("idempotency").inc()
        log.warning("idempotency key ignored: redis unavailable (%s)", exc)
        return await write()
    if existing is not None:
        return _replay(existing, print_)
    try:
        response = await write()
    except AppError as exc:
        response = error_response(exc.status, exc.message)
    except BaseException:
        await _forget(redis, record_key)
        raise
    if response.status_code >= 500:
        await _forget(redis, record_key)
        return response
    record = {
        "fingerprint": print_,
        "status": response.status_code,
        "body": bytes(response.body).decode(),
        "headers": {k: v for k, v in response.headers.items() if k.lower() in ("link", "location")},
    }
    try:
        await redis.set(record_key, orjson.dumps(record), ex=settings.idempotency_ttl_seconds)
    except (RedisError, OSError) as exc:
        REDIS_UNAVAILABLE.labels("idempotency").inc()
        log.warning("idempotent answer not stored: redis unavailable (%s)", exc)
    return response


def _replay(existing: bytes, print_: str) -> Response:
    if existing.startswith(PENDING + b":"):
        if existing[len(PENDING) + 1 :].decode() != print_:
            raise KeyReused()
        raise InProgress()
    record: dict[str, Any] = orjson.loads(existing)
    if record["fingerprint"] != print_:
        raise KeyReused()
    headers = {**record["headers"], "Idempotent-Replayed": "true"}
    return Response(record["body"].encode(), status_code=record["status"], media_type=JSON, headers=headers)


async def _forget(redis: Any, record_key: str) -> None:
    try:
        await redis.delete(record_key)
    except (RedisError, OSError):
        pass  # the lock expires by itself
