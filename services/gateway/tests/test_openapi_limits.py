"""The published OpenAPI document states the limits of `pinstack_contracts.limits`, which the
gateway and the services enforce: every place the document gives a limit gives that number, and
every limit is given somewhere. (test_openapi.py checks that the document is the generated one.)"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest

from pinstack_contracts import limits
from pinstack_gateway.openapi import DOCUMENT

pytestmark = pytest.mark.unit

DOC: dict[str, Any] = json.loads(DOCUMENT.read_bytes())
SCHEMAS: dict[str, Any] = DOC["components"]["schemas"]
# What a `format` says of the largest value, for the bound the document states only that way.
FORMAT_MAXIMUM = {"int32": 2**31 - 1, "int64": 2**63 - 1}


def body(model: str, field: str) -> dict[str, Any]:
    return SCHEMAS[model]["properties"][field]


def all_parameters() -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (method and path, parameter) of every operation."""
    for path, operations in DOC["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", ()):
                yield f"{method.upper()} {path}", parameter


def parameters(name: str, where: str = "query") -> Iterator[tuple[str, dict[str, Any]]]:
    return ((at, p) for at, p in all_parameters() if (p["name"], p["in"]) == (name, where))


def parameter(path: str, name: str) -> dict[str, Any]:
    found = [p for where, p in parameters(name) if where.endswith(f" {path}")]
    assert found, f"no query parameter {name} on {path}"
    return found[0]


def stated(schema: Any, keyword: str) -> set[Any]:
    """The values of `keyword` anywhere in `schema`, following references."""
    if isinstance(schema, list):
        return set().union(*(stated(item, keyword) for item in schema))
    if not isinstance(schema, dict):
        return set()
    if "$ref" in schema:
        return stated(SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]], keyword)
    found = {schema[keyword]} if keyword in schema else set()
    return found.union(*(stated(value, keyword) for value in schema.values()))


def numbers(description: str) -> set[int]:
    return {int(n) for n in re.findall(r"\b\d+\b", description)}


# (limit, where, the values the document states there, whether it must state only that value)
Statement = tuple[str, str, set[Any], bool]


def _statements() -> Iterator[Statement]:
    def keyword(limit: str, where: str, schema: dict[str, Any], name: str) -> Statement:
        # 0 is never a limit: it is the "empty means unchanged" branch of an optional field
        return limit, f"{where} {name}", stated(schema, name) - {0}, True

    def described(limit: str, where: str, schema: dict[str, Any]) -> Statement:
        return limit, f"{where} description", numbers(schema["description"]), False

    accounts = ("RegisterRequest", "CreateUserRequest")
    for model in (*accounts, "UpdateUserRequest"):
        for field, minimum, maximum in (
            ("username", "USERNAME_MIN", "USERNAME_MAX"),
            ("email", None, "EMAIL_MAX"),
            ("full_name", None, "FULL_NAME_MAX"),
            ("bio", None, "BIO_MAX"),
        ):
            if minimum:
                yield keyword(minimum, f"{model}.{field}", body(model, field), "minLength")
            yield keyword(maximum, f"{model}.{field}", body(model, field), "maxLength")
    username = next(p for _, p in parameters("username", "path"))["schema"]
    yield keyword("USERNAME_MIN", "path username", username, "minLength")
    yield keyword("USERNAME_MAX", "path username", username, "maxLength")
    for model in (*accounts, "UpdateAvatarRequest"):
        yield keyword("AVATAR_URL_MAX", f"{model}.avatar_url", body(model, "avatar_url"), "maxLength")
    passwords = {
        ("RegisterRequest", "password"): "NEW_PASSWORD_MIN",
        ("CreateUserRequest", "password"): "NEW_PASSWORD_MIN",
        ("UpdatePasswordRequest", "new_password"): "NEW_PASSWORD_MIN",
        ("LoginRequest", "password"): "PASSWORD_MIN",
        ("UpdatePasswordRequest", "old_password"): "PASSWORD_MIN",
    }
    for (model, field), minimum in passwords.items():
        yield keyword(minimum, f"{model}.{field}", body(model, field), "minLength")
        yield keyword("PASSWORD_MAX", f"{model}.{field}", body(model, field), "maxLength")
    yield keyword("LOGIN_MAX", "LoginRequest.login", body("LoginRequest", "login"), "maxLength")
    refresh = body("RefreshTokenRequest", "refresh_token")
    yield keyword("REFRESH_TOKEN_MAX", "RefreshTokenRequest.refresh_token", refresh, "maxLength")
    search = parameter("/api/v1/users/search", "query")
    yield keyword("SEARCH_QUERY_MIN", "search query", search["schema"], "minLength")
    yield keyword("SEARCH_QUERY_MAX", "search query", search["schema"], "maxLength")

    for model in ("CreatePostRequest", "UpdatePostRequest"):
        yield keyword("TITLE_MAX", f"{model}.title", body(model, "title"), "maxLength")
        yield keyword("CONTENT_MAX", f"{model}.content", body(model, "content"), "maxLength")
        yield keyword("TAGS_MAX", f"{model}.tags", body(model, "tags"), "maxItems")
        yield keyword("TAG_MIN", f"{model}.tags", body(model, "tags"), "minLength")
        yield keyword("TAG_MAX", f"{model}.tags", body(model, "tags"), "maxLength")
        yield keyword("MEDIA_MAX", f"{model}.media_items", body(model, "media_items"), "maxItems")
    yield keyword("TITLE_MIN", "CreatePostRequest.title", body("CreatePostRequest", "title"), "minLength")
    yield keyword("MEDIA_MAX", "MediaItemRequest.position", body("MediaItemRequest", "position"), "maximum")
    yield keyword("MEDIA_URL_MAX", "MediaItemRequest.url", body("MediaItemRequest", "url"), "maxLength")
    comment = body("CreateCommentRequest", "content")
    yield keyword("COMMENT_MIN", "CreateCommentRequest.content", comment, "minLength")
    yield keyword("COMMENT_MAX", "CreateCommentRequest.content", comment, "maxLength")
    kind = body("SendNotificationRequest", "type")
    yield keyword("NOTIFICATION_TYPE_MIN", "SendNotificationRequest.type", kind, "minLength")
    yield keyword("NOTIFICATION_TYPE_MAX", "SendNotificationRequest.type", kind, "maxLength")

    ids = [
        (f"{where} {p['name']}", p["schema"])
        for where, p in all_parameters()
        if p["name"].endswith("_id") and (p["in"] == "path" or p["name"] == "parent_id")
    ]
    for model, field in (
        ("UpdateUserRequest", "id"),
        ("FollowRequest", "followee_id"),
        ("SendNotificationRequest", "user_id"),
        ("CreateCommentRequest", "parent_id"),
    ):
        ids.append((f"{model}.{field}", body(model, field)))
    for where, schema in ids:
        yield keyword("ID_MIN", where, schema, "minimum")
        yield keyword("ID_MAX", where, schema, "maximum")

    for where, p in parameters("cursor"):
        yield keyword("CURSOR_MAX", f"{where} cursor", p["schema"], "maxLength")
    defaults = {
        "/api/v1/users/search": "SEARCH_PAGE_SIZE_DEFAULT",
        "/api/v1/notification/feed": "NOTIFICATIONS_PAGE_SIZE_DEFAULT",
    }
    for where, p in parameters("limit"):
        path = where.split(" ", 1)[1]
        yield described(defaults.get(path, "PAGE_SIZE_DEFAULT"), f"{where} limit", p)
        yield described("PAGE_SIZE_MAX", f"{where} limit", p)
        if "minimum" in p["schema"]:  # a typed parameter: its schema says the range
            yield keyword("PAGE_SIZE_MAX", f"{where} limit", p["schema"], "maximum")
            if not path.endswith("/posts/list"):  # there 0 means the default
                yield keyword("PAGE_SIZE_MIN", f"{where} limit", p["schema"], "minimum")
    for where, p in parameters("page"):
        yield described("PAGE_MIN", f"{where} page", p)
    notification_page = parameter("/api/v1/notification/feed", "page")["schema"]
    yield keyword("PAGE_MIN", "notification feed page", notification_page, "minimum")
    page_maximum = {FORMAT_MAXIMUM[notification_page["format"]]}
    yield "PAGE_MAX", "notification feed page format", page_maximum, True
    yield described("SEARCH_PAGE_MAX", "search page", parameter("/api/v1/users/search", "page"))


STATEMENTS = list(_statements())


@pytest.mark.parametrize(("limit", "where", "values", "only"), STATEMENTS, ids=[f"{s[0]}@{s[1]}" for s in STATEMENTS])
def test_the_document_states_the_limit(limit: str, where: str, values: set[Any], only: bool) -> None:
    value = getattr(limits, limit)
    if only:
        assert values == {value}, f"{where}: the document says {sorted(values)}, limits.{limit} is {value}"
    else:
        assert value in values, f"{where}: the document says {sorted(values)}, not limits.{limit} ({value})"


def test_every_limit_is_stated_in_the_document() -> None:
    public = {name for name, value in vars(limits).items() if name.isupper() and isinstance(value, int)}
    assert public - {limit for limit, *_ in STATEMENTS} == set()
