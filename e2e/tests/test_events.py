"""Kafka, observed read-only: a follow is announced on `relation-events` in the upstream shape
(contract §2.6), keyed by the follower (DESIGN §2), with the envelope in headers."""

from __future__ import annotations

import json
from datetime import datetime

from pinstack_e2e.client import Api
from pinstack_e2e.kafka import TopicWatcher
from pinstack_e2e.wait import eventually

# services/relations/src/pinstack_relations/events.py
RELATION_EVENTS = "relation-events"
FOLLOW_CREATED = "follow_created"


def test_a_follow_is_published_on_relation_events(api: Api, new_account, kafka_bootstrap: str) -> None:
    follower, followee = new_account("kfan"), new_account("kstar")
    with TopicWatcher(kafka_bootstrap, RELATION_EVENTS) as watcher:
        api.follow(follower, followee)

        def ours() -> list:
            found = []
            for message in watcher.matching(event_type=FOLLOW_CREATED):
                value = json.loads(message.value or b"{}")
                if value.get("follower_id") == follower.id and value.get("followee_id") == followee.id:
                    found.append((message, value))
            return found

        found = eventually(ours, bool, what=f"a follow_created for {follower.id} -> {followee.id} on {RELATION_EVENTS}")
    message, value = found[0]
    assert set(value) == {"followee_id", "follower_id", "timestamptz"}
    datetime.fromisoformat(value["timestamptz"].replace("Z", "+00:00"))
    assert message.key == str(follower.id).encode()
    assert message.headers["event_type"] == FOLLOW_CREATED
    assert message.headers.get("event_id") and message.headers.get("created_at", "").endswith("+0000 UTC")
    assert len({m.headers["event_id"] for m, _ in found}) == len(found)
