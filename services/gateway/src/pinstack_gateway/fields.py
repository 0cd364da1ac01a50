"""Field types of the public contract, with Go's decoding and validator semantics."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, field_validator
from pydantic_core import PydanticCustomError

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


MIN_USERNAME, MAX_USERNAME = 3, 32

Int64 = Annotated[int, Strict(), AfterValidator(_int64)]
Email = Annotated[str, AfterValidator(check_email)]
Url = Annotated[str, Field(max_length=2048), AfterValidator(check_url)]
OptionalUsername = Annotated[str, _optional_length(MIN_USERNAME, MAX_USERNAME)]
OptionalEmail = Annotated[str, AfterValidator(_optional_email)]
Password = Annotated[str, Field(min_length=6, max_length=1024)]
# New passwords need 8 (upstream's gateway said 6 but its backend refused 6-7 with a 500).
NewPassword = Annotated[str, Field(min_length=8, max_length=1024)]


class Body(BaseModel):
    """A public request body: strict JSON types, missing fields take Go's zero values."""

    model_config = ConfigDict(strict=True, validate_default=True, extra="ignore")

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
