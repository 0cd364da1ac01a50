"""The operator's own /metrics and its entry point."""

import socket
import subprocess
import sys
import urllib.request

import pytest

from pinstack_operator import metrics

pytestmark = pytest.mark.unit


def test_metrics_endpoint_serves_the_operator_metrics() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    metrics.RECONCILIATIONS.labels("test", "ready").inc()
    metrics.DRIFT.labels("kafka").inc(0)
    metrics.DURATION.labels("test").observe(0.1)
    metrics.serve(port)
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for name in (
        "pinstack_operator_reconciliations_total",
        "pinstack_operator_reconcile_duration_seconds_bucket",
        "pinstack_operator_drift_corrections_total",
    ):
        assert name in text


def test_entry_point_is_kopf_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pinstack_operator", "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0 and "--liveness" in done.stdout and "--standalone" in done.stdout
