from pathlib import Path

from pydantic import model_validator

from pinstack_kit.config import BaseServiceSettings


class Settings(BaseServiceSettings):
    service_name: str = "auth"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/pinstack_auth"
    users_url: str = "http://127.0.0.1:8101"

    jwt_issuer: str = "pinstack"
    # Ed25519 private key, PEM. In development an ephemeral key is generated when none is given.
    jwt_private_key: str = ""
    jwt_private_key_file: Path | None = None
    access_token_ttl_seconds: int = 900
    refresh_token_ttl_seconds: int = 30 * 24 * 3600

    @model_validator(mode="after")
    def _key_required_in_production(self) -> "Settings":
        if self.environment == "production" and not (self.jwt_private_key or self.jwt_private_key_file):
            raise ValueError("JWT_PRIVATE_KEY or JWT_PRIVATE_KEY_FILE must be set in production")
        return self

    def private_key_pem(self) -> str:
        if self.jwt_private_key:
            return self.jwt_private_key
        if self.jwt_private_key_file:
            return self.jwt_private_key_file.read_text()
        return ""
