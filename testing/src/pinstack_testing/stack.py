"""pytest plugin `pinstack-stack`: private stacks for fault tests that stop and restart servers.

The stack itself is e2e's black-box driver of `scripts/stack.py` (one driver for the drills and
the tests); this adds what only a white-box test needs: a migrated database of a service's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pinstack_e2e import stack as e2e_stack
from pinstack_testing import run_migrations


class PrivateStack(e2e_stack.PrivateStack):
    def database(self, name: str, migrations: Path) -> str:
        """A fresh migrated database on this stack's PostgreSQL."""
        with psycopg.connect(self.pg_admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"postgresql://postgres@127.0.0.1:{self.ports['PG']}/{name}"
        run_migrations(url, migrations)
        return url


@pytest.fixture(scope="module")
def private_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateStack]:
    stack = PrivateStack(tmp_path_factory.mktemp("stack"))
    stack.up()
    try:
        yield stack
    finally:
        stack.down()
