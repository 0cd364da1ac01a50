"""Versioned event envelope shared by every topic Pinstack owns.

`relation-events` keeps the upstream value shape for `follow_created` (contract §2.6) and
therefore carries the envelope fields in headers instead; see the relations service.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field


class Event(BaseModel):
    event_id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    type: str
    version: int = 1
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    aggregate_id: str
    data: dict[str, Any]

    def headers(self) -> dict[str, str]:
        return {"event_id": self.event_id, "event_type": self.type, "version": str(self.version)}
