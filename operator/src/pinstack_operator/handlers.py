"""Kopf handlers: registration only. The work is in reconcile.py (builders + steps)."""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Any

import kopf

from pinstack_operator import conditions, metrics
from pinstack_operator.builders.spec import InvalidSpec, parse_spec
from pinstack_operator.config import CONFIG
from pinstack_operator.reconcile import Outcome, reconcile, tear_down

GROUP, VERSION, PLURAL = "pinstack.io", "v1alpha1", "pinstackenvironments"
FINALIZER = "pinstack.io/finalizer"

_locks: dict[str, asyncio.Lock] = {}
_last_success = {"at": time.time()}


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    # Both watch timeouts: without them a silently dead watch stops all events (kopf #585, #957).
    settings.watching.server_timeout = CONFIG.watch_server_timeout
    settings.watching.client_timeout = CONFIG.watch_client_timeout
    settings.watching.connect_timeout = 30
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="pinstack.io")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="pinstack.io", key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    settings.execution.max_workers = 8
    logging.getLogger().setLevel(CONFIG.log_level)
    metrics.serve(CONFIG.metrics_port)


@kopf.on.probe(id="lastReconcileAgeSeconds")
def last_reconcile(**_: Any) -> float:
    return round(time.time() - _last_success["at"], 1)


def _exclusive(memo: kopf.Memo) -> asyncio.Lock:
    """One reconcile at a time per resource: the drift timer runs beside the event handlers, and
    a timer pass that started just before a deletion would otherwise re-create what it removed."""
    lock = memo.get("lock")
    if lock is None:
        lock = memo["lock"] = asyncio.Lock()
    return lock


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _run(trigger: str, body: kopf.Body, patch: kopf.Patch, logger: Any) -> Outcome | None:
    key = f"{body.metadata.namespace}/{body.metadata.name}"
    async with _locks.setdefault(key, asyncio.Lock()):
        status = dict(body.get("status") or {})
        generation = int(body.metadata.get("generation") or 0)
        try:
            env = parse_spec(body.metadata.name, body.metadata.namespace or "", body.spec)
        except (InvalidSpec, KeyError) as e:
            metrics.RECONCILIATIONS.labels(trigger, "invalid").inc()
            _set_status(patch, status, [conditions.Condition("SpecValid", False, "InvalidSpec", str(e))], generation)
            raise kopf.PermanentError(f"invalid spec: {e}") from e
        with metrics.DURATION.labels(trigger).time():
            outcome = await reconcile(env, body)
        for component, changes in outcome.changes.items():
            if changes:
                metrics.WRITES.labels(component).inc(len(changes))
        metrics.RECONCILIATIONS.labels(trigger, "ready" if outcome.ready else "degraded").inc()
        if outcome.ready:
            _last_success["at"] = time.time()
        _set_status(patch, status, outcome.conditions, generation)
        failed = "; ".join(f"{c.type}: {c.message}" for c in outcome.conditions if not c.status)
        logger.info(f"{trigger}: {outcome.writes} changes in {outcome.duration:.2f}s, ready={outcome.ready} {failed}")
        return outcome


def _set_status(patch: kopf.Patch, status: dict[str, Any], current: list[Any], generation: int) -> None:
    merged = conditions.merge(status.get("conditions") or [], current, generation, _now())
    phase = conditions.phase(merged, first_time=not status.get("conditions"))
    if (
        conditions.same(status.get("conditions") or [], merged)
        and status.get("phase") == phase
        and status.get("observedGeneration") == generation
        and status.get("operatorVersion") == CONFIG.operator_version
    ):
        return  # unchanged: write nothing
    patch.status["conditions"] = merged
    patch.status["phase"] = phase
    patch.status["observedGeneration"] = generation
    patch.status["operatorVersion"] = CONFIG.operator_version


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
async def apply(body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo, reason: Any = None, **_: Any) -> None:
    async with _exclusive(memo):
        if memo.get("deleting"):
            return
        outcome = await _run(str(reason or "apply"), body, patch, logger)
    if outcome and outcome.writes:
        kopf.info(body, reason="Reconciled", message="; ".join(c for cs in outcome.changes.values() for c in cs)[:1000])
    if outcome and not outcome.ready:
        failed = [f"{c.type}: {c.message}" for c in outcome.conditions if not c.status]
        kopf.warn(body, reason="Degraded", message="; ".join(failed)[:1000])


@kopf.timer(
    GROUP, VERSION, PLURAL, interval=CONFIG.drift_interval, idle=CONFIG.drift_idle, initial_delay=CONFIG.drift_idle
)
async def correct_drift(body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo, **_: Any) -> None:
    async with _exclusive(memo):
        # The body may predate the deletion: the flag set by `delete` is the reliable signal.
        if memo.get("deleting") or body.metadata.get("deletionTimestamp"):
            return
        outcome = await _run("timer", body, patch, logger)
    if not outcome:
        return
    for component, changes in outcome.changes.items():
        if changes:
            metrics.DRIFT.labels(component).inc(len(changes))
            kopf.warn(body, reason="DriftCorrected", message=f"{component}: {'; '.join(changes)}"[:1000])


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete(body: kopf.Body, logger: Any, memo: kopf.Memo, **_: Any) -> None:
    async with _exclusive(memo):
        memo["deleting"] = True  # a drift timer waiting on the lock must not re-create anything
    try:
        env = parse_spec(body.metadata.name, body.metadata.namespace or "", body.spec)
    except (InvalidSpec, KeyError):
        return  # never provisioned anything
    try:
        changes = await tear_down(env)
    except LookupError as e:
        # The admin Secret is gone (namespace deletion): nothing can be dropped; do not block.
        kopf.warn(body, reason="DeleteIncomplete", message=str(e))
        return
    logger.info(f"deleted ({env.deletion_policy}): {len(changes)} changes")
    kopf.info(body, reason="Deleted", message=f"deletionPolicy {env.deletion_policy}: {len(changes)} changes")
