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
from pinstack_operator.components import COMPONENTS
from pinstack_operator.config import CONFIG
from pinstack_operator.reconcile import Outcome, reconcile, tear_down
from pinstack_operator.steps import kube

GROUP, VERSION, PLURAL = "pinstack.io", "v1alpha1", "pinstackenvironments"
CRD = f"{PLURAL}.{GROUP}"
FINALIZER = "pinstack.io/finalizer"
# Kopf ignores every annotation under its own storage prefix (pinstack.io/) when it diffs an
# object, so no change handler fires for these two: `follow_annotations` watches every event.
PAUSED = "pinstack.io/paused"
ROTATE = "pinstack.io/rotate-credentials"

_locks: dict[str, asyncio.Lock] = {}
_last_success = {"at": time.time()}
_phases: dict[str, str] = {}  # namespace/name -> phase, for the pinstack_operator_resources gauge
_crd_at_start: dict[str, str | None] = {}  # "uid": the CRD's uid when this process started


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
    # An unexpected error is retried after this delay, not Kopf's default of 60 s: a transient
    # failure (an API server answering 429 or 500 under load) must not leave a new resource
    # without status for a minute or more.
    settings.execution.default_backoff = CONFIG.retry_delay
    settings.execution.max_workers = 8
    logging.getLogger().setLevel(CONFIG.log_level)
    metrics.serve(CONFIG.metrics_port)
    _count_phase("", None)  # every phase has a series from the start, zeros included
    metrics.declare_components(c.key for c in COMPONENTS)
    try:
        _crd_at_start["uid"] = kube.crd_uid(CRD)
    except Exception as e:  # a failing startup handler would hold back everything: the probe records it
        logging.getLogger(__name__).warning(f"CRD {CRD} not read at start: {e}")


@kopf.on.probe(id="lastReconcileAgeSeconds")
def last_reconcile(**_: Any) -> float:
    return round(time.time() - _last_success["at"], 1)


@kopf.on.probe(id="crd")
def crd_unchanged(**_: Any) -> str:
    """Not alive once the CRD this process started with was deleted or replaced: Kopf re-reads the
    API's discovery on a CRD event, and when that lags behind the new CRD (seen on every try
    here), it stays blind ("Unresolved resources cannot be served") until restarted. The kubelet
    restarts the pod on a failed liveness probe; the new process resolves the new CRD."""
    try:
        now = kube.crd_uid(CRD)
    except Exception as e:  # the API server is not this process's health
        return f"unknown ({type(e).__name__})"
    started = _crd_at_start.setdefault("uid", now)
    if now != started:
        raise kopf.PermanentError(f"CRD {CRD} changed under the operator ({started} -> {now}): restart to serve it")
    return now or "absent"


def _exclusive(memo: kopf.Memo) -> asyncio.Lock:
    """One reconcile at a time per resource: the drift timer runs beside the event handlers, and
    a timer pass that started just before a deletion would otherwise re-create what it removed."""
    lock = memo.get("lock")
    if lock is None:
        lock = memo["lock"] = asyncio.Lock()
    return lock


def _normal(body: kopf.Body, reason: str, message: str) -> None:
    """A Normal Event, always posted: kopf.info() obeys settings.posting.level (WARNING here, to
    keep log lines out of Events) and would drop these."""
    kopf.event(body, type="Normal", reason=reason, message=message)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def is_paused(body: kopf.Body) -> bool:
    return str(body.metadata.annotations.get(PAUSED, "")).lower() == "true"


def rotation_wanted(body: kopf.Body, memo: kopf.Memo) -> str | None:
    """The rotate-credentials value not handled yet (None: nothing to rotate). The memo covers
    the moment between a rotation and the status patch reaching the body a timer holds."""
    wanted = body.metadata.annotations.get(ROTATE)
    done = {(body.get("status") or {}).get("credentialsRotation"), memo.get("rotated")}
    return wanted if wanted and wanted not in done else None


def _count_phase(key: str, phase: str | None) -> None:
    if phase is None:
        _phases.pop(key, None)
    else:
        _phases[key] = phase
    for name in conditions.PHASES:
        metrics.RESOURCES.labels(name).set(sum(1 for p in _phases.values() if p == name))


async def _run(trigger: str, body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo) -> Outcome | None:
    key = f"{body.metadata.namespace}/{body.metadata.name}"
    try:
        return await _reconcile_once(trigger, key, body, patch, logger, memo)
    finally:
        if trigger != "timer":  # what the drift timer waits after (see correct_drift)
            memo["ran_at"] = time.monotonic()


async def _reconcile_once(
    trigger: str, key: str, body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo
) -> Outcome | None:
    async with _locks.setdefault(key, asyncio.Lock()):
        status = dict(body.get("status") or {})
        generation = int(body.metadata.get("generation") or 0)
        if is_paused(body):
            metrics.RECONCILIATIONS.labels(trigger, "paused").inc()
            merged = conditions.paused(status.get("conditions") or [], generation, _now())
            # observedGeneration stays at the last generation reconciled: a spec changed while
            # paused is not applied (nor reported as such) until the annotation goes.
            _write_status(patch, status, merged, int(status.get("observedGeneration") or 0))
            _count_phase(key, "Paused")
            return None
        try:
            env = parse_spec(body.metadata.name, body.metadata.namespace or "", body.spec)
        except (InvalidSpec, KeyError) as e:
            metrics.RECONCILIATIONS.labels(trigger, "invalid").inc()
            _set_status(patch, status, [conditions.Condition("SpecValid", False, "InvalidSpec", str(e))], generation)
            raise kopf.PermanentError(f"invalid spec: {e}") from e
        rotation = rotation_wanted(body, memo)
        try:
            with metrics.DURATION.labels(trigger).time():
                outcome = await reconcile(env, body, rotate=rotation is not None)
        except Exception as e:
            # Components report their own failures; this is what broke the pass itself. Say it
            # in the status (never leave it empty) and retry soon.
            metrics.RECONCILIATIONS.labels(trigger, "error").inc()
            message = f"{type(e).__name__}: {e}"[:1000]
            _write_status(
                patch,
                status,
                conditions.failed(status.get("conditions") or [], message, generation, _now()),
                generation,
            )
            raise kopf.TemporaryError(message, delay=CONFIG.retry_delay) from e
        if rotation is not None and outcome.ready:
            patch.status["credentialsRotation"] = memo["rotated"] = rotation
            _normal(body, reason="CredentialsRotated", message=f"new passwords for every role and user ({rotation})")
        for component, changes in outcome.changes.items():
            if changes:
                metrics.WRITES.labels(component).inc(len(changes))
        metrics.RECONCILIATIONS.labels(trigger, "ready" if outcome.ready else "degraded").inc()
        if outcome.ready:
            _last_success["at"] = time.time()
        _set_status(patch, status, outcome.conditions, generation)
        _count_phase(key, patch.status.get("phase") or status.get("phase"))
        failed = "; ".join(f"{c.type}: {c.message}" for c in outcome.conditions if not c.status)
        logger.info(f"{trigger}: {outcome.writes} changes in {outcome.duration:.2f}s, ready={outcome.ready} {failed}")
        return outcome


def _set_status(patch: kopf.Patch, status: dict[str, Any], current: list[Any], generation: int) -> None:
    _write_status(
        patch, status, conditions.merge(status.get("conditions") or [], current, generation, _now()), generation
    )


def _write_status(patch: kopf.Patch, status: dict[str, Any], merged: list[dict[str, Any]], generation: int) -> None:
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
        outcome = await _run(str(reason or "apply"), body, patch, logger, memo)
    if outcome and outcome.writes:
        _normal(body, reason="Reconciled", message="; ".join(c for cs in outcome.changes.values() for c in cs)[:1000])
    if outcome and not outcome.ready and not outcome.waiting:
        failed = [f"{c.type}: {c.message}" for c in outcome.conditions if not c.status]
        kopf.warn(body, reason="Degraded", message="; ".join(failed)[:1000])


@kopf.on.event(GROUP, VERSION, PLURAL)
async def follow_annotations(
    body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo, type: str | None = None, **_: Any
) -> None:
    """Pausing, resuming and credential rotation take effect on the next watch event (Kopf's
    change handlers never see annotations under its own prefix). Level-based: compares the
    annotations with the status, so it is a no-op for every other event."""
    if type == "DELETED" or body.metadata.get("deletionTimestamp"):
        return
    status = body.get("status") or {}
    if not status.get("conditions"):
        return  # never reconciled: the create (or resume) handler does the first pass
    if is_paused(body) == (status.get("phase") == "Paused") and rotation_wanted(body, memo) is None:
        return
    async with _exclusive(memo):
        if memo.get("deleting"):
            return
        outcome = await _run("annotations", body, patch, logger, memo)
    if outcome and outcome.writes:
        _normal(body, reason="Reconciled", message="; ".join(c for cs in outcome.changes.values() for c in cs)[:1000])


@kopf.timer(
    GROUP, VERSION, PLURAL, interval=CONFIG.drift_interval, idle=CONFIG.drift_idle, initial_delay=CONFIG.drift_idle
)
async def correct_drift(body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo, **_: Any) -> None:
    async with _exclusive(memo):
        # The body may predate the deletion: the flag set by `delete` is the reliable signal.
        if memo.get("deleting") or body.metadata.get("deletionTimestamp"):
            return
        # A pass that just ended has not reached this body yet (its status patch is applied after
        # the handler returns): comparing with that stale status would rewrite it for nothing.
        if time.monotonic() - memo.get("ran_at", -CONFIG.drift_idle) < CONFIG.drift_idle:
            return
        outcome = await _run("timer", body, patch, logger, memo)
    if not outcome:
        return
    done = [c for cs in outcome.changes.values() for c in cs if c.startswith(conditions.ROTATION_DONE)]
    if done:
        _normal(body, reason="CredentialsRetired", message=conditions.rotation_summary(done)[:1000])
    for component, changes in outcome.changes.items():
        drift = [c for c in changes if not c.startswith(conditions.ROTATION_DONE)]
        if drift:
            metrics.DRIFT.labels(component).inc(len(drift))
            kopf.warn(body, reason="DriftCorrected", message=f"{component}: {'; '.join(drift)}"[:1000])


def _starting(status: kopf.Status, **_: Any) -> bool:
    return conditions.starting(status.get("conditions") or ())


@kopf.timer(GROUP, VERSION, PLURAL, interval=CONFIG.retry_delay, when=_starting)
async def wait_for_servers(body: kopf.Body, patch: kopf.Patch, logger: Any, memo: kopf.Memo, **_: Any) -> None:
    """Managed mode: while the servers' pods start, look every few seconds instead of at the
    next drift pass (a start is not a failure, so no error retry)."""
    async with _exclusive(memo):
        if not (memo.get("deleting") or body.metadata.get("deletionTimestamp")):
            await _run("starting", body, patch, logger, memo)


@kopf.on.delete(GROUP, VERSION, PLURAL)
async def delete(body: kopf.Body, logger: Any, memo: kopf.Memo, **_: Any) -> None:
    async with _exclusive(memo):
        memo["deleting"] = True  # a drift timer waiting on the lock must not re-create anything
    try:
        env = parse_spec(body.metadata.name, body.metadata.namespace or "", body.spec)
    except (InvalidSpec, KeyError):
        return  # never provisioned anything
    try:
        changes = await tear_down(env, body)
    except LookupError as e:
        # The admin Secret is gone (namespace deletion): nothing can be dropped; do not block.
        kopf.warn(body, reason="DeleteIncomplete", message=str(e))
        return
    _count_phase(f"{body.metadata.namespace}/{body.metadata.name}", None)
    logger.info(f"deleted ({env.deletion_policy}): {len(changes)} changes")
    _normal(body, reason="Deleted", message=f"deletionPolicy {env.deletion_policy}: {len(changes)} changes")
