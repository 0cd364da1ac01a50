from pinstack_kit.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "gateway"
    users_url: str = "http://127.0.0.1:8101"
    auth_url: str = "http://127.0.0.1:8102"
    posts_url: str = "http://127.0.0.1:8103"
    relations_url: str = "http://127.0.0.1:8104"
    notifications_url: str = "http://127.0.0.1:8105"
    feed_url: str = "http://127.0.0.1:8106"
    activity_url: str = "http://127.0.0.1:8107"
    jwks_url: str = "http://127.0.0.1:8102/.well-known/jwks.json"
    jwt_issuer: str = "pinstack"
    upstream_timeout_seconds: float = 5.0
    max_body_bytes: int = 1024 * 1024
