"""The event catalogue: every event type Pinstack's services exchange, once, with the envelope and a
versioned payload model for each.

A producer builds its payload through the model (`UserCreated(**user)`), so a missing or unknown
field fails when the event is written, not when some consumer reads it; `Event.of` wraps it in
the envelope the outbox publishes. A consumer reads a record with `read`, which returns the model
its `event_type` and `version` headers name. Readers ignore fields they do not know (a newer
producer may add one); anything else that does not fit the model is a `MalformedEvent`.

`relation-events` keeps the upstream message (api-contract §2.6): its value is the bare payload
(`Follow`) and the envelope travels in headers, built by the relations service.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)

from pinstack_contracts import topics

USER_CREATED = "user_created"
USER_UPDATED = "user_updated"
USER_DELETED = "user_deleted"
POST_CREATED = "post_created"
POST_UPDATED = "post_updated"
POST_DELETED = "post_deleted"
FOLLOW_CREATED = "follow_created"
FOLLOW_DELETED = "follow_deleted"
LIKE_CREATED = "like_created"
COMMENT_CREATED = "comment_created"
MENTION_CREATED = "mention_created"

TYPES: tuple[str, ...] = (
    USER_CREATED,
    USER_UPDATED,
    USER_DELETED,
    POST_CREATED,
    POST_UPDATED,
    POST_DELETED,
    FOLLOW_CREATED,
    FOLLOW_DELETED,
    LIKE_CREATED,
    COMMENT_CREATED,
    MENTION_CREATED,
)


class MalformedEvent(ValueError):
    """A record a consumer cannot read: it will never fit, so it goes to the dead-letter topic."""


class Payload(BaseModel):
    """`data` of one event type at one version. Field order is wire order."""

    # Writers may not invent fields; `read` lets readers skip the ones they do not know.
    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str]
    VERSION: ClassVar[int] = 1
    TOPIC: ClassVar[str]
    BARE: ClassVar[bool] = False  # the record's value is the payload itself, not an `Event`

    @classmethod
    def parse(cls, value: bytes) -> Self:
        """A record's value as this type's payload, fields this model does not know left out
        (raises `ValidationError`)."""
        data = _RAW.validate_json(value) if cls.BARE else _Envelope.model_validate_json(value).data
        return cls.model_validate({name: data[name] for name in data.keys() & cls.model_fields.keys()})


class Event(BaseModel):
    """The envelope of every event but the relation ones; `headers()` repeats what consumers
    dispatch and deduplicate on, so they need not parse the value to skip it."""

    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    aggregate_id: str
    data: dict[str, Any]

    @classmethod
    def of(cls, payload: Payload, aggregate_id: object, event_id: str | None = None) -> Event:
        identity = {} if event_id is None else {"event_id": event_id}
        return cls(
            **identity,
            type=payload.TYPE,
            version=payload.VERSION,
            aggregate_id=str(aggregate_id),
            data=payload.model_dump(),
        )

    def headers(self) -> dict[str, str]:
        return {"event_id": self.event_id, "event_type": self.type, "version": str(self.version)}


class _Envelope(BaseModel):
    """What a reader needs of an `Event`: the rest is in the headers."""

    model_config = ConfigDict(title="Event")  # how validation errors name it

    data: dict[str, Any]


_RAW = TypeAdapter(dict[str, Any])


# user-events, key: the user id


class User(Payload):
    """The users service's public user object; optional fields are left out when null."""

    TOPIC = topics.USER_EVENTS

    id: int
    username: str
    email: str
    full_name: str | None = None
    bio: str | None = None
    avatar_url: str | None = None
    created_at: str  # RFC 3339, seconds
    updated_at: str

    @model_serializer(mode="wrap")
    def _without_nulls(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return {name: value for name, value in handler(self).items() if value is not None}


class UserCreated(User):
    TYPE = USER_CREATED


class UserUpdated(User):
    TYPE = USER_UPDATED


class UserDeleted(Payload):
    TYPE = USER_DELETED
    TOPIC = topics.USER_EVENTS

    id: int


# post-events, key: the post id


class Post(Payload):
    TOPIC = topics.POST_EVENTS

    id: int
    author_id: int
    title: str
    created_at: str | None  # RFC 3339, seconds
    tags: list[str]


class PostCreated(Post):
    TYPE = POST_CREATED


class PostUpdated(Post):
    TYPE = POST_UPDATED


class PostDeleted(Payload):
    TYPE = POST_DELETED
    TOPIC = topics.POST_EVENTS

    id: int
    author_id: int


# relation-events, key: the follower id; the upstream value, the envelope in headers


class Follow(Payload):
    TOPIC = topics.RELATION_EVENTS
    BARE = True

    # Upstream's key order (its jsonb round trip: by length, then bytes).
    followee_id: int
    follower_id: int
    timestamptz: str  # RFC 3339 with Go's trimmed nanoseconds


class FollowCreated(Follow):
    TYPE = FOLLOW_CREATED


class FollowDeleted(Follow):
    TYPE = FOLLOW_DELETED


# activity-events, key: the post id


class LikeCreated(Payload):
    TYPE = LIKE_CREATED
    TOPIC = topics.ACTIVITY_EVENTS

    post_id: int
    post_author_id: int
    user_id: int
    created_at: str  # RFC 3339, seconds


class CommentCreated(Payload):
    TYPE = COMMENT_CREATED
    TOPIC = topics.ACTIVITY_EVENTS

    comment_id: int
    post_id: int
    post_author_id: int
    author_id: int
    parent_id: int | None
    parent_author_id: int | None
    content: str
    created_at: str  # RFC 3339 with trimmed fractional seconds


class MentionCreated(Payload):
    TYPE = MENTION_CREATED
    TOPIC = topics.ACTIVITY_EVENTS

    mentioned_user_id: int
    author_id: int
    post_id: int
    comment_id: int | None  # None when the mention is in the post's title
    source: Literal["post", "comment"]
    created_at: str  # RFC 3339, seconds


MODELS: tuple[type[Payload], ...] = (
    UserCreated,
    UserUpdated,
    UserDeleted,
    PostCreated,
    PostUpdated,
    PostDeleted,
    FollowCreated,
    FollowDeleted,
    LikeCreated,
    CommentCreated,
    MentionCreated,
)
CATALOGUE: dict[tuple[str, int], type[Payload]] = {(model.TYPE, model.VERSION): model for model in MODELS}

P = TypeVar("P", bound=Payload)


def read(value: bytes, kind: str | None, version: str | None, models: Iterable[type[P]]) -> P | None:
    """The payload of a record whose headers say `kind` and `version` (no version header: 1), as
    the one of `models` written for them; None when `kind` is none of theirs, the consumer's
    business being elsewhere. Raises `MalformedEvent` for a payload its model refuses, or a
    version none of `models` reads."""
    wanted = [model for model in models if kind == model.TYPE]
    if not wanted:
        return None
    number = version or "1"
    for model in wanted:
        if str(model.VERSION) == number:
            try:
                return model.parse(value)
            except ValidationError as exc:
                raise MalformedEvent(f"{kind} v{number}: {exc}") from exc
    raise MalformedEvent(f"{kind} v{number}: no model for this version")
