from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.db import create_engine


@pytest.fixture(scope="session")
def kit_database(pg_database, tmp_path_factory) -> str:  # type: ignore[no-untyped-def]
    """A database with only the kit's own tables (outbox, processed_events)."""
    empty = tmp_path_factory.mktemp("no-service-migrations")
    return pg_database("kit", Path(empty))


@pytest.fixture
async def engine(kit_database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(BaseServiceSettings(database_url=kit_database, service_name="kit-test"))
    yield engine
    await engine.dispose()
