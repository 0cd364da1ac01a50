"""dashboards/: generated files are current, uids stable, rules valid and unit-tested by promtool."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "dashboards"

pytestmark = pytest.mark.unit


def test_generated_files_are_current() -> None:
    done = subprocess.run(  # noqa: S603
        [sys.executable, str(DASHBOARDS / "build.py"), "--check"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"dashboards are stale, run `uv run python dashboards/build.py`:\n{done.stderr}"


def test_dashboards_have_stable_uids_and_cover_the_stack() -> None:
    uids = {p.stem: json.loads(p.read_text())["uid"] for p in (DASHBOARDS / "json").glob("*.json")}
    assert uids == {
        "overview": "pinstack-overview",
        "red": "pinstack-red",
        "kafka": "pinstack-kafka",
        "database": "pinstack-database",
        "cache": "pinstack-cache",
        "operator": "pinstack-operator",
    }
    red = (DASHBOARDS / "json" / "red.json").read_text()
    for needle in ("http_requests_total", "histogram_quantile(0.5", "histogram_quantile(0.99", "by (route"):
        assert needle in red
    kafka = (DASHBOARDS / "json" / "kafka.json").read_text()
    assert "kafka_consumer_lag" in kafka and "outbox_backlog" in kafka
    assert "cache_requests_total" in (DASHBOARDS / "json" / "cache.json").read_text()


def _promtool() -> str:
    path = shutil.which("promtool")
    if not path:
        pytest.skip("promtool is not installed")
    return path


def test_promtool_check_rules() -> None:
    done = subprocess.run(  # noqa: S603
        [_promtool(), "check", "rules", str(DASHBOARDS / "rules" / "pinstack.rules.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_test_rules() -> None:
    tests = sorted((DASHBOARDS / "rules" / "tests").glob("*.yaml"))
    assert tests
    done = subprocess.run([_promtool(), "test", "rules", *map(str, tests)], capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_promtool_test() -> None:
    import yaml

    rules = yaml.safe_load((DASHBOARDS / "rules" / "pinstack.rules.yaml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    tested = {
        case["alertname"]
        for path in (DASHBOARDS / "rules" / "tests").glob("*.yaml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    }
    assert alerts <= tested, f"alerts without a promtool test: {alerts - tested}"
