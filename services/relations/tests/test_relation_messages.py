"""`relation-events` records byte for byte as before the event catalogue (contract §2.6)."""

from datetime import UTC, datetime

import pytest

from pinstack_contracts.events import FollowCreated, FollowDeleted
from pinstack_relations.events import relation_message

pytestmark = pytest.mark.unit

AT = datetime(2026, 1, 2, 3, 4, 5, 123400, tzinfo=UTC)


@pytest.mark.parametrize("kind", [FollowCreated, FollowDeleted])
def test_the_value_is_the_bare_upstream_follow_and_the_envelope_is_in_headers(
    kind: type[FollowCreated] | type[FollowDeleted],
) -> None:
    message = relation_message(kind, 8, 7, AT)
    assert message.key == "8"
    assert message.value == b'{"followee_id":7,"follower_id":8,"timestamptz":"2026-01-02T03:04:05.1234Z"}'
    assert message.headers.keys() == {"event_id", "event_type", "created_at"}
    assert message.headers["event_type"] == kind.TYPE
    assert message.headers["created_at"] == "2026-01-02 03:04:05.1234 +0000 UTC"
    assert len(message.headers["event_id"]) == 32
