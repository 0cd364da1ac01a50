"""The event catalogue: a model for every type, payloads that survive the wire, and the bytes the
producers published before the catalogue existed."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from pinstack_contracts import topics
from pinstack_contracts.events import (
    CATALOGUE,
    COMMENT_CREATED,
    FOLLOW_CREATED,
    FOLLOW_DELETED,
    LIKE_CREATED,
    MENTION_CREATED,
    MODELS,
    POST_CREATED,
    POST_DELETED,
    POST_UPDATED,
    TYPES,
    USER_CREATED,
    USER_DELETED,
    USER_UPDATED,
    CommentCreated,
    Event,
    FollowCreated,
    FollowDeleted,
    LikeCreated,
    MalformedEvent,
    MentionCreated,
    Payload,
    PostCreated,
    PostDeleted,
    PostUpdated,
    UserCreated,
    UserDeleted,
    UserUpdated,
    read,
)

pytestmark = pytest.mark.unit

STAMP = "2026-01-02T03:04:05Z"
NANO = "2026-01-02T03:04:05.1234Z"
AT = datetime(2026, 1, 2, 3, 4, 5, 123400, tzinfo=UTC)

SAMPLES: dict[str, Payload] = {
    USER_CREATED: UserCreated(
        id=7, username="ada", email="ada@example.com", bio="Maths", created_at=STAMP, updated_at=STAMP
    ),
    USER_UPDATED: UserUpdated(
        id=7,
        username="ada",
        email="ada@example.com",
        full_name="Ada Lovelace",
        avatar_url="https://x.io/a.png",
        created_at=STAMP,
        updated_at=STAMP,
    ),
    USER_DELETED: UserDeleted(id=7),
    POST_CREATED: PostCreated(id=11, author_id=7, title="Hello", created_at=STAMP, tags=["go", "python"]),
    POST_UPDATED: PostUpdated(id=11, author_id=7, title="Hello again", created_at=STAMP, tags=[]),
    POST_DELETED: PostDeleted(id=11, author_id=7),
    FOLLOW_CREATED: FollowCreated(followee_id=7, follower_id=8, timestamptz=NANO),
    FOLLOW_DELETED: FollowDeleted(followee_id=7, follower_id=8, timestamptz=NANO),
    LIKE_CREATED: LikeCreated(post_id=11, post_author_id=7, user_id=8, created_at=STAMP),
    COMMENT_CREATED: CommentCreated(
        comment_id=5,
        post_id=11,
        post_author_id=7,
        author_id=8,
        parent_id=None,
        parent_author_id=None,
        content="nice ✓",
        created_at=NANO,
    ),
    MENTION_CREATED: MentionCreated(
        mentioned_user_id=9, author_id=8, post_id=11, comment_id=5, source="comment", created_at=STAMP
    ),
}


def wire(payload: Payload, aggregate_id: int = 1, event_id: str = "0f0e") -> tuple[bytes, dict[str, str]]:
    """The value and headers of the record a producer publishes (the relations service adds its
    own `event_id` and `created_at` headers to a bare payload)."""
    if payload.BARE:
        return payload.model_dump_json().encode(), {"event_type": payload.TYPE}
    event = Event.of(payload, aggregate_id, event_id).model_copy(update={"occurred_at": AT})
    return event.model_dump_json().encode(), event.headers()


class TestCatalogue:
    def test_every_type_has_one_model_on_a_known_topic(self) -> None:
        assert len(set(TYPES)) == len(TYPES)
        assert sorted(model.TYPE for model in MODELS) == sorted(TYPES)
        assert len(CATALOGUE) == len(MODELS)
        assert {model.TOPIC for model in MODELS} == set(topics.ALL)
        assert SAMPLES.keys() == set(TYPES)

    @pytest.mark.parametrize("kind", TYPES)
    def test_a_payload_round_trips(self, kind: str) -> None:
        sent = SAMPLES[kind]
        value, headers = wire(sent)
        received = read(value, headers["event_type"], headers.get("version"), MODELS)
        assert type(received) is type(sent)
        assert received == sent


# What the producers published before the catalogue, byte for byte: one event per topic. User
# events leave out null optional fields, activity events keep their nulls, relation events are the
# bare upstream follow.
BEFORE = [
    (
        USER_CREATED,
        7,
        "0f0e",
        b'{"event_id":"0f0e","type":"user_created","version":1,"occurred_at":"2026-01-02T03:04:05.123400Z",'
        b'"aggregate_id":"7","data":{"id":7,"username":"ada","email":"ada@example.com","bio":"Maths",'
        b'"created_at":"2026-01-02T03:04:05Z","updated_at":"2026-01-02T03:04:05Z"}}',
    ),
    (
        POST_CREATED,
        11,
        "0f0e",
        b'{"event_id":"0f0e","type":"post_created","version":1,"occurred_at":"2026-01-02T03:04:05.123400Z",'
        b'"aggregate_id":"11","data":{"id":11,"author_id":7,"title":"Hello","created_at":"2026-01-02T03:04:05Z",'
        b'"tags":["go","python"]}}',
    ),
    (
        COMMENT_CREATED,
        11,
        "comment_created:5",
        b'{"event_id":"comment_created:5","type":"comment_created","version":1,'
        b'"occurred_at":"2026-01-02T03:04:05.123400Z","aggregate_id":"11","data":{"comment_id":5,"post_id":11,'
        b'"post_author_id":7,"author_id":8,"parent_id":null,"parent_author_id":null,'
        b'"content":"nice \xe2\x9c\x93","created_at":"2026-01-02T03:04:05.1234Z"}}',
    ),
    (FOLLOW_CREATED, 8, "", b'{"followee_id":7,"follower_id":8,"timestamptz":"2026-01-02T03:04:05.1234Z"}'),
]


class TestWireBytes:
    @pytest.mark.parametrize(("kind", "aggregate_id", "event_id", "expected"), BEFORE)
    def test_the_bytes_stay_what_they_were(self, kind: str, aggregate_id: int, event_id: str, expected: bytes) -> None:
        value, headers = wire(SAMPLES[kind], aggregate_id, event_id)
        assert value == expected
        assert headers["event_type"] == kind

    def test_envelope_headers(self) -> None:
        _, headers = wire(SAMPLES[USER_CREATED], 7)
        assert headers == {"event_id": "0f0e", "event_type": "user_created", "version": "1"}


class TestReading:
    def test_types_the_consumer_did_not_ask_for_are_not_its_business(self) -> None:
        value, _ = wire(SAMPLES[POST_CREATED])
        assert read(value, POST_CREATED, "1", [UserCreated, UserDeleted]) is None
        assert read(value, None, None, [PostCreated]) is None

    def test_fields_a_newer_producer_added_are_ignored(self) -> None:
        value = b'{"followee_id":7,"follower_id":8,"timestamptz":"2026-01-02T03:04:05.1234Z","via":"search"}'
        assert read(value, FOLLOW_CREATED, None, [FollowCreated]) == SAMPLES[FOLLOW_CREATED]

    @pytest.mark.parametrize(
        ("value", "version", "says"),
        [
            (b"{not json", "1", "Invalid JSON"),
            (b'{"type":"user_deleted"}', "1", "data\n  Field required"),
            (b'{"data":{"id":"seven"}}', "1", "id\n  Input should be a valid integer"),
            (b'{"data":{"id":7}}', "2", "user_deleted v2: no model for this version"),
        ],
    )
    def test_what_does_not_fit_is_malformed_and_says_why(self, value: bytes, version: str, says: str) -> None:
        with pytest.raises(MalformedEvent) as caught:
            read(value, USER_DELETED, version, [UserDeleted])
        assert str(caught.value).startswith(f"user_deleted v{version}: ")
        assert says in str(caught.value)


class TestWriting:
    def test_a_wrong_field_fails_when_the_event_is_built(self) -> None:
        with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
            PostDeleted(id=11, author_id=7, title="Hello")
        with pytest.raises(ValidationError, match="Field required"):
            LikeCreated(post_id=11, post_author_id=7, created_at=STAMP)
