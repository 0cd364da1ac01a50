"""The operator's own Prometheus metrics, served on METRICS_PORT."""

from __future__ import annotations

import logging
from collections.abc import Iterable

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


def declare_components(components: Iterable[str]) -> None:
    """Zero series for every component, so dashboards and alerts see 0 instead of no data."""
    for component in components:
        DRIFT.labels(component)
        WRITES.labels(component)


def serve(port: int) -> None:
    """Serve /metrics on `port` (0: not at all). A port already taken is logged, not raised: this
    runs in Kopf's startup handler, and a failing startup handler keeps the whole operator from
    watching anything while Kopf retries it (every 60 s by default)."""
    if port <= 0 or port in _started:
        return
    try:
        start_http_server(port)
    except OSError as e:
        logging.getLogger(__name__).error(f"metrics not served: port {port} is not free ({e}); set METRICS_PORT")
        return
    _started.add(port)
