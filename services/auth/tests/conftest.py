import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinstack_auth.config import Settings


@pytest.fixture(scope="session")
def private_key_pem() -> str:
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture
def settings(service_settings, private_key_pem: str, users_url: str) -> Settings:  # type: ignore[no-untyped-def]
    # users_url: a real users server, auth reaches it over HTTP as in production
    return service_settings(Settings, jwt_private_key=private_key_pem, users_url=users_url)
