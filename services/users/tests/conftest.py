from collections.abc import Callable

import pytest

from pinstack_users.config import Settings


@pytest.fixture
def settings(service_settings: Callable[..., Settings]) -> Settings:
    return service_settings(Settings)
