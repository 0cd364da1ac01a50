from pydantic import Field

from pinstack_kit.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "feed"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/pinstack_feed"
    # Entries kept per timeline in Redis; older pages are read from Postgres.
    timeline_cap: int = Field(800, ge=10, le=100_000)
    # Authors with more followers than this are not fanned out on write but merged at read time.
    celebrity_threshold: int = Field(1000, ge=1)
    # Posts of a newly followed account copied into the follower's timeline.
    backfill_count: int = Field(20, ge=0, le=1000)
