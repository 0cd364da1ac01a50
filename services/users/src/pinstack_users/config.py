from pinstack_kit.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "users"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/pinstack_users"
    cache_ttl_seconds: int = 300
