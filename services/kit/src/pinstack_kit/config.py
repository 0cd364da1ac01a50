"""Settings base: every service reads its configuration from the environment."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class BaseServiceSettings(BaseSettings):
    """Connection settings shared by all services; defaults match the local stack (`make up`)."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    service_name: str = "pinstack"
    log_level: str = "INFO"
    # One JSON line per request (method, route template, status, ms, request id). Off by default
    # in every environment: failures (5xx, timeouts, shed and rate-limited 429s) are logged
    # anyway, and a line per request costs the hot paths ~10 % on a small machine.
    access_log: bool = False
    # The deadline of a request that brought none (`X-Request-Timeout-Ms`, see deadline.py);
    # unset: no deadline of its own. The gateway sets one for every request.
    request_timeout_seconds: float | None = Field(None, gt=0, le=300)
    # How long a call to another service may take (less when the request's deadline is nearer);
    # the gateway's is also the deadline it gives each request.
    upstream_timeout_seconds: float = Field(5.0, gt=0, le=300)

    database_url: str = ""
    db_pool_size: int = Field(10, ge=1, le=200)
    db_max_overflow: int = Field(10, ge=0, le=200)
    db_statement_timeout_ms: int = Field(5000, ge=100)

    redis_url: str = "redis://127.0.0.1:56379/0"
    redis_key_prefix: str = ""

    kafka_bootstrap_servers: str = "127.0.0.1:59092"
    kafka_topic_prefix: str = ""

    # Run the service's worker loops (worker.Worker) inside the API's process instead of in one
    # of their own: `make up` does, a pod does not (the chart's worker Deployment runs them).
    worker_inline: bool = False

    # After SIGTERM, how long /readyz answers 503 while requests are still served (see app.py);
    # unset: 5 s in production (a load balancer's probe period), none elsewhere.
    shutdown_drain_seconds: float | None = Field(None, ge=0, le=300)

    @property
    def is_development(self) -> bool:
        return self.environment != "production"

    @property
    def drain_seconds(self) -> float:
        if self.shutdown_drain_seconds is not None:
            return self.shutdown_drain_seconds
        return 5.0 if self.environment == "production" else 0.0

    @property
    def key_prefix(self) -> str:
        """Redis keys of a service live under `<service>:` (the operator's ACL user is scoped to it)."""
        return self.redis_key_prefix or f"{self.service_name}:"

    def topic(self, name: str) -> str:
        return f"{self.kafka_topic_prefix}{name}"

    @model_validator(mode="after")
    def _database_url_driver(self) -> BaseServiceSettings:
        # Accept plain postgresql:// URLs (what operators and humans write) and pin the driver.
        url = self.database_url
        for plain in ("postgresql://", "postgres://"):
            if url.startswith(plain):
                object.__setattr__(self, "database_url", "postgresql+psycopg://" + url[len(plain) :])
        return self
