"""The worker's housekeeping on the real PostgreSQL: old processed events go, recent ones stay."""

import uuid

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_kit.worker import PROCESSED_EVENTS_RETENTION, Housekeeping

pytestmark = pytest.mark.integration


async def test_processed_events_older_than_the_dedupe_window_are_deleted(engine: AsyncEngine) -> None:
    consumer = f"housekeeping-{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO processed_events (consumer, event_key, processed_at) VALUES"
                " (:c, 'old', now() - interval '15 days'), (:c, 'recent', now() - interval '13 days')"
            ),
            {"c": consumer},
        )
    await Housekeeping(engine, [PROCESSED_EVENTS_RETENTION]).run_once()
    async with engine.connect() as conn:
        kept = await conn.scalars(text("SELECT event_key FROM processed_events WHERE consumer = :c"), {"c": consumer})
        assert list(kept) == ["recent"]


async def test_a_database_outage_skips_a_round_and_stop_ends_the_loop(engine: AsyncEngine) -> None:
    chore = Housekeeping(engine, ["SELECT no_such_function()"], interval=60)
    chore.stop()
    await chore.run()  # logs the failed round, then returns at once instead of sleeping
