"""How the relations service publishes its events (names and payloads: `pinstack_contracts.events`).

`relation-events` keeps the upstream message (contract §2.6) so upstream consumers still work:
the value is the bare follow, the envelope travels in headers. Unlike upstream the key is the
follower id, so partitions spread the load and one user's follows and unfollows stay in order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from pinstack_contracts.events import Follow
from pinstack_kit.envelope import rfc3339_nano

CONSUMER_GROUP = "relations"


@dataclass(frozen=True)
class RelationMessage:
    key: str
    value: bytes
    headers: dict[str, str]


def go_time(ts: datetime) -> str:
    """Go's default `time.Time` string (`2025-08-17 12:00:00.123456 +0000 UTC`), zeros trimmed."""
    ts = ts.astimezone(UTC)
    frac = f"{ts.microsecond:06d}".rstrip("0")
    return ts.strftime("%Y-%m-%d %H:%M:%S") + (f".{frac}" if frac else "") + " +0000 UTC"


def relation_message(kind: type[Follow], follower_id: int, followee_id: int, at: datetime) -> RelationMessage:
    follow = kind(followee_id=followee_id, follower_id=follower_id, timestamptz=rfc3339_nano(at))
    headers = {"event_id": uuid.uuid4().hex, "event_type": kind.TYPE, "created_at": go_time(at)}
    return RelationMessage(key=str(follower_id), value=orjson.dumps(follow.model_dump()), headers=headers)
