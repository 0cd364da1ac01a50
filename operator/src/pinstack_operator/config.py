"""Operator settings from the environment (the chart sets LOG_LEVEL, METRICS_PORT, POD_NAMESPACE)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from pinstack_operator import __version__


@dataclass(frozen=True)
class Config:
    log_level: str = "INFO"
    metrics_port: int = 9090
    pod_namespace: str = ""
    operator_version: str = __version__
    drift_interval: float = 60.0
    drift_idle: float = 10.0
    watch_server_timeout: int = 300
    watch_client_timeout: int = 310
    retry_delay: float = 10.0

    @classmethod
    def from_env(cls) -> Config:
        env = os.environ
        return cls(
            log_level=env.get("LOG_LEVEL", "INFO").upper(),
            metrics_port=int(env.get("METRICS_PORT", "9090")),
            pod_namespace=env.get("POD_NAMESPACE", ""),
            operator_version=env.get("OPERATOR_VERSION", __version__),
            drift_interval=float(env.get("DRIFT_INTERVAL_SECONDS", "60")),
            drift_idle=float(env.get("DRIFT_IDLE_SECONDS", "10")),
            watch_server_timeout=int(env.get("WATCH_SERVER_TIMEOUT", "300")),
            watch_client_timeout=int(env.get("WATCH_CLIENT_TIMEOUT", "310")),
            retry_delay=float(env.get("RETRY_DELAY_SECONDS", "10")),
        )


CONFIG = Config.from_env()
