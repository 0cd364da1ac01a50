"""Request bodies decoded the way the upstream Go gateway decodes them (contract §1.1).

- empty body, invalid JSON, a non-object, or a value of the wrong type → 400 `invalid input`;
- keys match field names case-insensitively, unknown keys are ignored, only the first JSON value
  is read, `null` leaves a field at its zero value;
- an unpaired surrogate escape (`"\\ud800"`) becomes U+FFFD, as in Go;
- then the model's rules run → 400 `validation failed`.

Every request's body is read first, by the app-wide dependency `read_within_limit`, before any
route looks at it. One larger than `max_body_bytes` is a 413 envelope; the rest of it is read and
thrown away before the answer goes out (up to `max_drain_bytes`), because a server that answers
and closes while the client is still sending resets the connection, and the client sees a broken
pipe instead of the 413. Only a client that asks first (`Expect: 100-continue`) hears the 413
before sending anything.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar, get_args, get_origin

from fastapi import Depends, Request
from pydantic import BaseModel, ValidationError

from pinstack_kit.errors import BadRequest, InvalidInput, PayloadTooLarge, validation_message

M = TypeVar("M", bound=BaseModel)

_DECODER = json.JSONDecoder(parse_constant=lambda name: _reject(name))
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_first_value(raw: bytes) -> Any:
    text = raw.decode("utf-8", "replace").lstrip(" \t\r\n")
    if not text:
        raise InvalidInput()
    try:
        value, _ = _DECODER.raw_decode(text)  # trailing bytes are ignored, as Go's Decoder does
        # Only a `\u` escape can produce a lone surrogate (the text itself is valid UTF-8).
        return _replace_surrogates(value) if "\\u" in text else value
    except (ValueError, RecursionError) as exc:  # Go refuses nesting deeper than 10000 too
        raise InvalidInput() from exc


def _replace_surrogates(value: Any) -> Any:
    """Python keeps an unpaired surrogate (which no encoder accepts); Go decodes it as U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_replace_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {_replace_surrogates(key): _replace_surrogates(item) for key, item in value.items()}
    return value


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def normalize(value: Any, model: type[BaseModel]) -> Any:
    """Map keys onto field names case-insensitively and drop nulls (zero values), recursively."""
    if not isinstance(value, dict):
        return value
    fields = {name.lower(): (name, info) for name, info in model.model_fields.items()}
    out: dict[str, Any] = {}
    for key, item in value.items():
        match = fields.get(key.lower())
        if match is None or item is None:
            continue
        name, info = match
        nested = _model_of(info.annotation)
        if nested is not None and isinstance(item, list) and get_origin(info.annotation) is not None:
            item = [normalize(element, nested) if element is not None else {} for element in item]
        elif nested is not None:
            item = normalize(item, nested)
        out[name] = item
    return out


def decode(raw: bytes, model: type[M]) -> M:
    value = parse_first_value(raw)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidInput()
    try:
        return model.model_validate(normalize(value, model))
    except ValidationError as exc:
        raise BadRequest(validation_message(exc.errors())) from exc


async def read_within_limit(request: Request) -> None:
    """The body, read once for every route (an app dependency) into `request.state.body`.
    Async: a sync dependency would cost a thread hop."""
    declared, chunked = None, False
    for name, value in request.scope["headers"]:  # one pass: Headers' lookups walk them twice
        if name == b"content-length" and declared is None:
            declared = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
    if declared in (None, "0") and not chunked:
        request.state.body = b""  # no body: the common case
        return
    headers = request.headers
    settings = request.app.state.settings
    limit = settings.max_body_bytes
    if (
        declared
        and declared.isdigit()
        and int(declared) > limit
        and "100-continue" in headers.get("expect", "").lower()
    ):
        raise PayloadTooLarge()  # the client waits for a word before sending its body
    chunks, size = [], 0
    stream = request.stream()
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            async for chunk in stream:  # read, to be thrown away
                size += len(chunk)
                if size > settings.max_drain_bytes:
                    break
            raise PayloadTooLarge()
        chunks.append(chunk)
    request.state.body = b"".join(chunks)


def json_body(model: type[M]) -> Any:
    """Use as `Annotated[Model, json_body(Model)]`: decoded with Go semantics, documented in OpenAPI."""

    async def dependency(request: Request) -> M:
        return decode(request.state.body, model)

    dependency.body_model = model  # type: ignore[attr-defined]  # read by openapi.build_openapi
    return Depends(dependency)
