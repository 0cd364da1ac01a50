"""Operator tests. The timer runs every few seconds here, so drift tests stay short; set before
pinstack_operator.config is imported."""

import os

os.environ.setdefault("DRIFT_INTERVAL_SECONDS", "3")
os.environ.setdefault("DRIFT_IDLE_SECONDS", "1")
os.environ.setdefault("METRICS_PORT", "0")
os.environ.setdefault("RETRY_DELAY_SECONDS", "2")
