from pydantic import Field

from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.overload import cpu_count


class Settings(BaseServiceSettings):
    service_name: str = "users"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/pinstack_users"
    cache_ttl_seconds: int = 300
    # Password hashes at once (unset: one per CPU of the process), how many more may wait at most
    # (unset: 32 per running one) and how long a wait may be expected to take; past that, 503
    # with Retry-After at once (kit overload.py).
    password_hash_concurrency: int | None = Field(None, ge=1, le=256)
    password_hash_queue: int | None = Field(None, ge=0, le=10_000)
    password_hash_max_wait_seconds: float = Field(0.5, gt=0, le=60)

    @property
    def hash_concurrency(self) -> int:
        return self.password_hash_concurrency or cpu_count()

    @property
    def hash_queue(self) -> int:
        return self.hash_concurrency * 32 if self.password_hash_queue is None else self.password_hash_queue
