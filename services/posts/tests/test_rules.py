"""Pure rules of the posts slice: time parsing, strict date bounds, request normalisation."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pinstack_posts.posts.schemas import CreatePost, UpdatePost, parse_rfc3339
from pinstack_posts.posts.service import wire_bounds

pytestmark = pytest.mark.unit

NOON = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class TestParseRfc3339:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-05-01T12:00:00Z", NOON),
            ("2024-05-01t12:00:00z", NOON),
            ("2024-05-01T14:00:00+02:00", NOON),
            ("2024-05-01T12:00:00.250Z", NOON + timedelta(milliseconds=250)),
            ("2024-05-01T12:00:00.123456789Z", NOON + timedelta(microseconds=123456)),
        ],
    )
    def test_accepts_go_rfc3339(self, text: str, expected: datetime) -> None:
        assert parse_rfc3339(text) == expected

    @pytest.mark.parametrize(
        "text",
        ["2024-05-01", "2024-05-01 12:00:00Z", "2024-05-01T12:00:00", "2024-02-30T00:00:00Z", "1714564800", "", 5],
    )
    def test_rejects_anything_else(self, text: object) -> None:
        with pytest.raises(ValueError):
            parse_rfc3339(text)


class TestWireBounds:
    def test_after_starts_at_the_next_whole_second(self) -> None:
        assert wire_bounds(NOON, None) == (NOON + timedelta(seconds=1), None)
        assert wire_bounds(NOON + timedelta(milliseconds=300), None) == (NOON + timedelta(seconds=1), None)

    def test_before_ends_at_the_shown_second(self) -> None:
        assert wire_bounds(None, NOON) == (None, NOON)
        assert wire_bounds(None, NOON + timedelta(milliseconds=300)) == (None, NOON + timedelta(seconds=1))

    def test_offsets_are_kept(self) -> None:
        plus_two = NOON.astimezone(timezone(timedelta(hours=2)))
        since, until = wire_bounds(plus_two, plus_two)
        assert since == NOON + timedelta(seconds=1) and until == NOON

    @pytest.mark.parametrize(
        ("after", "before"),
        [
            ("9999-12-31T23:59:59Z", "9999-12-31T23:59:59.999999Z"),
            ("9999-12-31T23:59:59-23:59", "9999-12-31T23:59:59-23:59"),
            ("0001-01-01T00:00:00+23:59", "0001-01-01T00:00:00+23:59"),
            ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00.5Z"),
        ],
    )
    def test_the_edges_of_time_are_clamped_not_overflowed(self, after: str, before: str) -> None:
        since, until = wire_bounds(parse_rfc3339(after), parse_rfc3339(before))
        assert since is not None and until is not None
        for bound in (since, until):
            assert bound.utcoffset() == timedelta(0)
            assert bound.astimezone(UTC) == bound  # representable in UTC, as the driver binds it


class TestBodies:
    def test_tags_are_deduplicated_case_sensitively_in_order(self) -> None:
        body = CreatePost.model_validate({"author_id": 1, "title": "t", "tags": ["b", "a", "b", "A"]})
        assert body.tags == ["b", "a", "A"]

    def test_the_tag_limit_counts_distinct_names(self) -> None:
        names = [f"t{i}" for i in range(10)]
        assert CreatePost.model_validate({"author_id": 1, "title": "t", "tags": names + names}).tags == names
        with pytest.raises(ValidationError):
            CreatePost.model_validate({"author_id": 1, "title": "t", "tags": [*names, "t10"]})

    def test_an_update_may_send_empty_fields(self) -> None:
        body = UpdatePost.model_validate({"user_id": 1, "title": "", "content": "", "tags": [], "media_items": []})
        assert (body.title, body.content, body.tags, body.media_items) == ("", "", [], [])
