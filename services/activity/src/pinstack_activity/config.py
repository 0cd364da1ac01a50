from pydantic import Field

from pinstack_kit.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "activity"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/pinstack_activity"
    posts_url: str = "http://127.0.0.1:8103"
    # A user's views of a post count once per window.
    view_window_seconds: int = Field(3600, ge=1)
