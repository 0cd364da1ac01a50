"""The operator's own Prometheus metrics, served on METRICS_PORT."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

RECONCILIATIONS = Counter(
    "pinstack_operator_reconciliations_total", "Reconciliations of PinstackEnvironments", ["trigger", "result"]
)
DURATION = Histogram(
    "pinstack_operator_reconcile_duration_seconds",
    "Time to reconcile one PinstackEnvironment",
    ["trigger"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DRIFT = Counter("pinstack_operator_drift_corrections_total", "Drift found and corrected by the timer", ["component"])
WRITES = Counter("pinstack_operator_writes_total", "Changes made to external systems and objects", ["component"])
RESOURCES = Gauge("pinstack_operator_resources", "PinstackEnvironments by phase", ["phase"])

_started: set[int] = set()


def serve(port: int) -> None:
    if port > 0 and port not in _started:
        start_http_server(port)
        _started.add(port)
