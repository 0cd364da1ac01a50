"""Status conditions: Ready plus one per component, each with observedGeneration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

COMPONENTS = ("PostgresReady", "RedisReady", "KafkaTopicsReady", "SecretsReady", "DashboardsReady", "AlertsReady")


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool
    reason: str
    message: str = ""


def merge(
    previous: Sequence[Mapping[str, Any]], current: Sequence[Condition], generation: int, now: str
) -> list[dict[str, Any]]:
    """New condition list; lastTransitionTime changes only when a condition's status changes."""
    before = {c.get("type"): c for c in previous or ()}
    ready = all(c.status for c in current)
    failed = [c.type for c in current if not c.status]
    every = [
        *current,
        Condition(
            "Ready",
            ready,
            "Reconciled" if ready else "ComponentsNotReady",
            "all components are ready" if ready else f"not ready: {', '.join(failed)}",
        ),
    ]
    out = []
    for c in every:
        status = "True" if c.status else "False"
        old = before.get(c.type) or {}
        since = old.get("lastTransitionTime") if old.get("status") == status else None
        out.append(
            {
                "type": c.type,
                "status": status,
                "reason": c.reason,
                "message": c.message,
                "observedGeneration": generation,
                "lastTransitionTime": since or now,
            }
        )
    return out


def phase(conditions: Sequence[Mapping[str, Any]], first_time: bool) -> str:
    ready = next((c for c in conditions if c["type"] == "Ready"), None)
    if ready and ready["status"] == "True":
        return "Ready"
    return "Provisioning" if first_time else "Degraded"


def same(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    return list(a or []) == list(b or [])
