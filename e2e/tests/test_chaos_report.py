"""The chaos drill's verdict: a fault it was asked to run and did not is a failure, and by default
it gives itself the time to run them all."""

from __future__ import annotations

from pinstack_e2e.chaos import FAULT_BUDGET, FAULTS, parse, worst_case
from pinstack_e2e.chaos_drill import DrillReport, FaultResult, format_report
from pinstack_e2e.chaos_load import Ledger
from pinstack_e2e.chaos_verify import Findings


def _report(skipped: list[str]) -> DrillReport:
    faults = [FaultResult("kafka", 3.0, recovery_seconds=4.0)]
    return DrillReport(faults, Ledger(), Findings(), 0.5, {"gateway": 200}, skipped)


def test_a_skipped_fault_fails_the_drill_and_is_named() -> None:
    assert _report([]).ok
    report = _report(["redis", "postgres"])
    assert not report.ok
    text = format_report(report)
    assert "SKIPPED (asked for, not run: out of time or load): redis, postgres" in text
    assert text.endswith("skipped=2 -> FAIL")


def test_by_default_the_drill_has_no_deadline_and_load_for_every_fault() -> None:
    args = parse([])
    assert args.duration is None and args.faults == FAULTS and len(FAULTS) == 18
    assert worst_case(args.faults, args.hold) == 18 * (args.hold + FAULT_BUDGET)
