"""One reconciliation of a PinstackEnvironment: every component of components.COMPONENTS is
ensured (builders give the desired state, steps make it so), or torn down on deletion.

Everything here is idempotent: with nothing to change, no step writes and the status is not
patched. Returns the changes per component so handlers can post Events and count drift.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pinstack_operator.builders import ownership, postgres
from pinstack_operator.builders import secrets as secret_builder
from pinstack_operator.builders.spec import EnvironmentSpec
from pinstack_operator.components import (
    COMPONENTS,
    MANAGED_SERVERS,
    PROVISIONED,
    Component,
    Credentials,
    Pass,
    Pending,
    workloads,
)
from pinstack_operator.conditions import FAILED, Condition
from pinstack_operator.steps import kube


@dataclass
class Outcome:
    changes: dict[str, list[str]] = field(default_factory=dict)
    conditions: list[Condition] = field(default_factory=list)
    duration: float = 0.0
    waiting: bool = False  # for the managed servers to start: retried soon, not a degradation

    @property
    def writes(self) -> int:
        return sum(len(v) for v in self.changes.values())

    @property
    def ready(self) -> bool:
        return all(c.status for c in self.conditions)

    def add(self, component: Component, condition: Condition, changes: list[str]) -> None:
        self.changes[component.key] = changes
        self.conditions.append(condition)


def _error(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"[:1000]


async def _ensure(component: Component, run: Pass) -> tuple[Condition, list[str]]:
    """The component's condition and changes; an unexpected error escapes."""
    kind = component.condition
    try:
        changes = await component.ensure(run)
    except Pending as e:
        return Condition(kind, False, e.reason, str(e)), e.changes
    except ownership.Conflict as e:
        return Condition(kind, False, "Conflict", str(e)), []
    return Condition(kind, True, component.ready_reason, component.done(run.env)), changes


async def ensure_all(run: Pass, components: tuple[Component, ...] = PROVISIONED) -> list[tuple[Condition, list[str]]]:
    """Every provisioned component at once; one with `needs` waits for them and is Waiting (not
    run) unless they are all True. A failed step is that component's Failed condition."""
    tasks: dict[str, asyncio.Task[tuple[Condition, list[str]]]] = {}

    async def one(component: Component) -> tuple[Condition, list[str]]:
        unmet = [need for need in component.needs if not (await tasks[need])[0].status]
        if unmet:
            message = f"not written until {', '.join(sorted(unmet))} (see their conditions)"
            return Condition(component.condition, False, "Waiting", message), []
        try:
            return await _ensure(component, run)
        except Exception as e:
            return Condition(component.condition, False, FAILED, _error(e)), []

    for component in components:
        tasks[component.condition] = asyncio.create_task(one(component))
    return list(await asyncio.gather(*tasks.values()))


async def find_conflicts(run: Pass) -> dict[str, list[str]]:
    """Condition type -> what another environment owns (read only). A server that cannot be read
    here is reported by the provisioning step itself, so errors are not conflicts."""
    found = await asyncio.gather(*(c.conflicts(run) for c in PROVISIONED), return_exceptions=True)
    return {
        c.condition: messages
        for c, messages in zip(PROVISIONED, found, strict=True)
        if isinstance(messages, list) and messages
    }


def _conflicted(conflicts: dict[str, list[str]]) -> Outcome:
    """Nothing is written while another environment owns a name this one wants."""
    out = Outcome()
    for c in PROVISIONED:
        if c.condition in conflicts:
            out.add(c, Condition(c.condition, False, "Conflict", "; ".join(conflicts[c.condition])[:1000]), [])
        else:
            out.add(c, Condition(c.condition, False, "Blocked", "not provisioned: another environment owns names"), [])
    return out


async def _credentials(env: EnvironmentSpec, rotate: bool) -> dict[str, Credentials]:
    existing = await asyncio.gather(
        *(
            asyncio.to_thread(kube.read_secret, env.namespace, secret_builder.secret_name(env.name, s))
            for s in env.services
        )
    )
    dbs = {db.service: db for db in postgres.databases(env)}
    return {
        s: Credentials.keep_or_make(s, cur, rotate, dbs.get(s)) for s, cur in zip(env.services, existing, strict=True)
    }


async def _retirable(env: EnvironmentSpec, rotate: bool) -> dict[str, bool]:
    """Per service: whether a rotation's old credentials may stop working, which is once every pod
    of its Deployments runs on the new Secret and has for a while (never in the rotating pass
    itself: its Secrets are written, and the pods rolled, after the servers' steps)."""
    if rotate:
        return dict.fromkeys(env.services, False)
    rolling = await asyncio.to_thread(kube.unsettled, env.namespace, workloads(env))
    return {s: s not in rolling for s in env.services}


async def reconcile(env: EnvironmentSpec, body: Mapping[str, Any], rotate: bool = False) -> Outcome:
    """`rotate`: new passwords for every database role and Redis user (and their Secrets)."""
    started = time.monotonic()
    out = await _pass(Pass(env, body), rotate)
    out.duration = time.monotonic() - started
    return out


async def _pass(run: Pass, rotate: bool) -> Outcome:
    out = Outcome()
    if run.env.managed is not None:  # the servers are this environment's own: no one to conflict with
        condition, changes = await _ensure(MANAGED_SERVERS, run)  # an error fails the pass (retried soon)
        out.add(MANAGED_SERVERS, condition, changes)
        if not condition.status:
            out.waiting = True
            out.conditions += [
                Condition(c.condition, False, "Waiting", "waiting for the managed servers") for c in PROVISIONED
            ]
            return out
    elif conflicts := await find_conflicts(run):
        return _conflicted(conflicts)
    run.creds, run.retire = await asyncio.gather(_credentials(run.env, rotate), _retirable(run.env, rotate))
    for component, (condition, changes) in zip(PROVISIONED, await ensure_all(run), strict=True):
        out.add(component, condition, changes)
    return out


async def tear_down(env: EnvironmentSpec, body: Mapping[str, Any]) -> list[str]:
    """On deletion: remove the Kubernetes children; with deletionPolicy Delete also the data this
    environment owns (never what another environment claimed)."""
    run = Pass(env, body)
    changes: list[str] = []
    for component in reversed(COMPONENTS):
        changes += await component.tear_down(run)
    return changes
