"""Field types of the public contract, with Go's decoding and validator semantics."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from pinstack_contracts.limits import (
    AVATAR_URL_MAX,
    EMAIL_MAX,
    NEW_PASSWORD_MIN,
    PASSWORD_MAX,
    PASSWORD_MIN,
    USERNAME_MAX,
    USERNAME_MIN,
)
from pinstack_kit.validation import INT64_MAX, INT64_MIN, check_email, check_url


def _int64(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        # A decoding error in Go (the number does not fit), hence `invalid input`.
        raise PydanticCustomError("int64_overflow", "number does not fit in int64")
    return value


def _optional_length(low: int, high: int) -> Any:
    def check(value: str) -> str:
        if value and not low <= len(value) <= high:
            raise ValueError(f"length must be {low}-{high}")
        return value

    return AfterValidator(check)


def _optional_email(value: str) -> str:
    return check_email(value) if value else value


def declared(**schema: Any) -> Any:
    """JSON Schema keywords for the OpenAPI document of a rule a validator enforces."""
    return Field(json_schema_extra=schema)


Int64 = Annotated[int, Strict(), AfterValidator(_int64), declared(format="int64")]
Email = Annotated[str, Field(max_length=EMAIL_MAX), AfterValidator(check_email), declared(format="email")]
Url = Annotated[
    str,
    Field(max_length=AVATAR_URL_MAX),  # a post's media narrow it
    AfterValidator(check_url),
    declared(
        format="uri",
        pattern="^[Hh][Tt][Tt][Pp][Ss]?://",
        description="an http(s) link any client may fetch: no credentials, no IP address of a loopback, "
        "private, link-local or reserved network, a host name with a dot that is not `localhost` nor under "
        "`.localhost`, `.local`, `.localdomain`, `.internal`, `.lan` or `.home.arpa`",
    ),
]
# Empty means "unchanged".
OptionalUsername = Annotated[
    str,
    _optional_length(USERNAME_MIN, USERNAME_MAX),
    declared(anyOf=[{"maxLength": 0}, {"minLength": USERNAME_MIN, "maxLength": USERNAME_MAX}]),
]
OptionalEmail = Annotated[
    str,
    Field(max_length=EMAIL_MAX),
    AfterValidator(_optional_email),
    declared(anyOf=[{"maxLength": 0}, {"format": "email"}]),
]
Password = Annotated[str, Field(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX)]
# Upstream's gateway took 6 for new passwords too, but its backend refused 6-7 with a 500.
NewPassword = Annotated[str, Field(min_length=NEW_PASSWORD_MIN, max_length=PASSWORD_MAX)]

# pydantic cannot fold a bound on a type with an after-validator (Int64) into JSON Schema keywords
_KEYWORDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_keywords(schema: Any) -> None:
    if isinstance(schema, dict):
        for constraint, keyword in _KEYWORDS.items():
            if constraint in schema:
                schema[keyword] = schema.pop(constraint)
        if schema.get("format") == "int64":  # beyond it Go's decoder refuses the number
            schema.setdefault("minimum", INT64_MIN)
            schema.setdefault("maximum", INT64_MAX)
        for value in schema.values():
            _json_schema_keywords(value)
    elif isinstance(schema, list):
        for value in schema:
            _json_schema_keywords(value)


def _document_body(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """A field is required when its absence (Go's zero value) is refused, whatever its default."""
    try:
        model.model_validate({})
        refused: set[Any] = set()
    except ValidationError as exc:
        refused = {error["loc"][0] for error in exc.errors() if error["loc"]}
    required = [name for name in schema.get("properties", {}) if name in refused]
    for name in required:
        schema["properties"][name].pop("default", None)
    if required:
        schema["required"] = required
    _json_schema_keywords(schema)


class Body(BaseModel):
    """A public request body: strict JSON types, missing fields take Go's zero values."""

    model_config = ConfigDict(strict=True, validate_default=True, extra="ignore", json_schema_extra=_document_body)

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold NUL: refused as bad input here rather than a 500 downstream.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("NUL character")
        return value


T = TypeVar("T")


class Envelope(BaseModel, Generic[T]):
    status: int
    data: T


class StatusOnly(BaseModel):
    status: int


class ErrorEnvelope(BaseModel):
    status: int
    message: str


class MessageData(BaseModel):
    message: str


def documented(success: int, model: type[BaseModel] | None, *errors: int) -> dict[str, Any]:
    """Route keyword arguments that document the envelope of the success and each error status."""
    if model is None:
        ok: dict[str, Any] = {"model": StatusOnly} if success != 204 else {"description": "No Content"}
    else:
        ok = {"model": Envelope[model]}  # type: ignore[valid-type]
    responses: dict[int | str, dict[str, Any]] = {success: ok}
    for status in errors:
        responses[status] = {"model": ErrorEnvelope}
    return {"status_code": success, "responses": responses}
