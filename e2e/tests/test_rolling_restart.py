"""A rolling restart under load: every service API and every worker of a private stack is
SIGTERMed and started again, one after another, while a load generator writes through the gateway.

Afterwards every accepted write exists exactly once, every event was applied exactly once
downstream (one notification per follow, like and comment; counters equal to their rows; no
post twice in a feed), failed requests got only documented errors (503 `external service
unavailable`, or no connection while the gateway itself restarts) and every service is ready.
The load and the checks are the chaos drill's (`make chaos`), with no part held down.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pinstack_e2e.chaos_drill import APIS, STACK_ENV, WORKERS, Drill, format_report
from pinstack_e2e.stack import PrivateStack

pytestmark = [pytest.mark.fault, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def full_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    stack = PrivateStack(Path(tmp_path_factory.mktemp("rolling")), env=STACK_ENV)
    try:
        stack.up_all()
        yield stack
    finally:
        stack.down()


class TestRollingRestart:
    async def test_every_part_restarted_under_load_loses_and_duplicates_nothing(self, full_stack: PrivateStack) -> None:
        drill = Drill(full_stack, rate=6.0, max_requests=6000, seed=7, log=print)
        report = await drill.run([*APIS, *WORKERS], hold=0.0, deadline=time.monotonic() + 1200)
        text = format_report(report)
        print(text)
        assert not report.skipped, text
        assert [f.name for f in report.faults] == [*APIS, *WORKERS]
        assert report.findings.lost == [], text
        assert report.findings.duplicated == [], text
        assert [(a.phase, a.op, a.outcome) for a in report.undocumented()] == [], text
        assert all(f.recovery_seconds is not None and not f.unexpected_restarts for f in report.faults), text
        assert set(report.healthy.values()) == {200}, text
        assert sum(a.accepted for a in report.ledger.attempts if a.op == "follow") > 0
