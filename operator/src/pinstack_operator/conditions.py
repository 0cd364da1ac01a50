"""Status conditions: Ready plus one per component, each with observedGeneration."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The components' own condition types are in components.COMPONENTS.
MANAGED = "ManagedServersReady"  # Managed mode only, before the others
STARTING = "Starting"  # the managed servers' pods are not ready yet
PAUSED = "Paused"
CONFLICT = "Conflict"
FAILED = "Failed"
# The changes that end a credential rotation (the old login and password switched off) begin
# with this: they are its planned last step, not drift (handlers.correct_drift).
ROTATION_DONE = "rotation done: "
PHASES = ("Pending", "Provisioning", "Ready", "Degraded", "Paused", "Deleting", "Failed")


def rotation_summary(changes: Sequence[str]) -> str:
    """One line for the ROTATION_DONE changes of a pass, grouped by what was done: "switched off
    the login of role a, b; ...". A pass may retire every credential at once, and one sentence
    per credential would overrun an Event's 1 KiB message and hide the last ones."""
    names: dict[str, list[str]] = {}
    for change in changes:
        what, _, name = change.removeprefix(ROTATION_DONE).rpartition(" ")
        names.setdefault(what, []).append(name)
    return "; ".join(f"{what} {', '.join(sorted(each))}" for what, each in names.items())


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
    conflicts = [c for c in current if not c.status and c.reason == CONFLICT]
    if conflicts:  # the one reason a user must act on: say so at the top, naming the owner
        summary = Condition("Ready", False, CONFLICT, "; ".join(c.message for c in conflicts))
    elif errors := [c for c in current if not c.status and c.reason == FAILED]:
        # a step failed (a server refused us, an API call failed): retried, and said as an error
        summary = Condition("Ready", False, "ReconcileError", "; ".join(f"{c.type}: {c.message}" for c in errors))
    else:
        summary = Condition(
            "Ready",
            ready,
            "Reconciled" if ready else "ComponentsNotReady",
            "all components are ready" if ready else f"not ready: {', '.join(failed)}",
        )
    return _stamp(before, [*current, summary], generation, now)


def paused(previous: Sequence[Mapping[str, Any]], generation: int, now: str) -> list[dict[str, Any]]:
    """While paused the components are not looked at: their last known conditions stay as they
    were, and a Paused condition says why nothing changes."""
    before = {c.get("type"): c for c in previous or ()}
    kept = [
        Condition(c["type"], c.get("status") == "True", c.get("reason") or "Unknown", c.get("message") or "")
        for c in previous or ()
        if c.get("type") != PAUSED
    ]
    note = Condition(PAUSED, True, "ReconciliationPaused", 'annotation pinstack.io/paused is "true": no writes')
    out = _stamp(before, [*kept, note], generation, now)
    # The components were not reconciled at this generation: keep the generation they describe.
    for c in out:
        if c["type"] != PAUSED and before.get(c["type"], {}).get("observedGeneration") is not None:
            c["observedGeneration"] = before[c["type"]]["observedGeneration"]
    return out


def failed(previous: Sequence[Mapping[str, Any]], error: str, generation: int, now: str) -> list[dict[str, Any]]:
    """A reconciliation that could not run to its end: the components keep their last known
    conditions and Ready says what went wrong (a retry follows within seconds)."""
    before = {c.get("type"): c for c in previous or ()}
    kept = [
        Condition(c["type"], c.get("status") == "True", c.get("reason") or "Unknown", c.get("message") or "")
        for c in previous or ()
        if c.get("type") not in ("Ready", PAUSED)
    ]
    return _stamp(before, [*kept, Condition("Ready", False, "ReconcileError", error)], generation, now)


def _stamp(
    before: Mapping[Any, Mapping[str, Any]], every: Sequence[Condition], generation: int, now: str
) -> list[dict[str, Any]]:
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
    if any(c["type"] == PAUSED and c["status"] == "True" for c in conditions):
        return "Paused"
    ready = next((c for c in conditions if c["type"] == "Ready"), None)
    if ready and ready["status"] == "True":
        return "Ready"
    if starting(conditions):
        return "Provisioning"
    return "Provisioning" if first_time else "Degraded"


def starting(conditions: Sequence[Mapping[str, Any]]) -> bool:
    """Whether the managed servers' pods were still starting (Managed mode)."""
    return any(c.get("type") == MANAGED and c.get("reason") == STARTING for c in conditions)


def same(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]) -> bool:
    return list(a or []) == list(b or [])
