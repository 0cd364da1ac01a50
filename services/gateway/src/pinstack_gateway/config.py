from ipaddress import IPv4Network, IPv6Network, ip_network

from pydantic import Field, field_validator, model_validator

from pinstack_contracts.services import BY_NAME
from pinstack_kit.config import BaseServiceSettings


def local_url(service: str) -> str:
    """Where the local stack (scripts/stack.py) serves a service: its port in the registry."""
    return f"http://127.0.0.1:{BY_NAME[service].port}"


class Settings(BaseServiceSettings):
    service_name: str = "gateway"
    users_url: str = local_url("users")
    auth_url: str = local_url("auth")
    posts_url: str = local_url("posts")
    relations_url: str = local_url("relations")
    notifications_url: str = local_url("notifications")
    feed_url: str = local_url("feed")
    activity_url: str = local_url("activity")
    jwks_url: str = f"{local_url('auth')}/.well-known/jwks.json"
    jwt_issuer: str = "pinstack"
    # The auth service's access-token lifetime (the same variable): how long a mark of an ended
    # session is kept. And how old what the gateway read of such marks may be (sessions.py).
    access_token_ttl_seconds: int = Field(900, ge=1)
    revocation_cache_seconds: float = Field(0.5, ge=0, le=1)
    # How long the answers of the hottest public reads are kept in process (response_cache.py);
    # 0 turns the cache off. At most a second: what other clients may read late.
    response_cache_seconds: float = Field(1.0, ge=0, le=1)
    max_body_bytes: int = 1024 * 1024
    # How much of a body over the limit is read (and thrown away) so that its sender gets the 413
    # rather than a reset connection; past it, the answer goes out at once (body.py).
    max_drain_bytes: int = Field(64 * 1024 * 1024, ge=0)
    # Rate limits (0 disables one): per client IP on /api/v1/auth/*; failed logins of one account,
    # and of one client IP, before each further attempt waits longer (limits.py); and writes per
    # authenticated user.
    rate_limit_auth_per_minute: int = Field(60, ge=0)
    rate_limit_login_failures: int = Field(10, ge=0)
    rate_limit_login_failures_per_client: int = Field(20, ge=0)
    rate_limit_writes_per_minute: int = Field(120, ge=0)
    # Requests of one client IP in flight at once on /api/v1/auth/* (password hashing behind
    # them): past it 429 at once, so one client's burst cannot take the hashing capacity every
    # client shares (limits.py). Unset: 4 in production, off elsewhere (every client of a dev
    # stack is 127.0.0.1); 0: off.
    auth_in_flight_per_client: int | None = Field(None, ge=0)
    # Peers whose X-Forwarded-For is believed: comma-separated addresses or CIDR networks.
    trusted_proxies: str = ""
    idempotency_ttl_seconds: int = Field(24 * 3600, ge=1)
    # How long a key stays "in progress" if the process handling it dies mid-request.
    idempotency_lock_seconds: int = Field(60, ge=1)

    @model_validator(mode="after")
    def _request_deadline(self) -> "Settings":
        # A request may take as long as one call to a service: the deadline travels to them (kit
        # deadline.py) and bounds each of their own calls by what is left of it.
        if self.request_timeout_seconds is None:
            object.__setattr__(self, "request_timeout_seconds", self.upstream_timeout_seconds)
        return self

    @property
    def auth_in_flight_limit(self) -> int:
        if self.auth_in_flight_per_client is not None:
            return self.auth_in_flight_per_client
        return 4 if self.environment == "production" else 0

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        trusted_networks(value)  # refuse a typo at start-up rather than trusting nobody silently
        return value


def trusted_networks(value: str) -> list[IPv4Network | IPv6Network]:
    return [ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip()]
