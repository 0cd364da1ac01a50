"""The service registry: consistent with itself, and readable without anything installed."""

import subprocess
import sys
from pathlib import Path

import pytest

from pinstack_contracts import services, topics

pytestmark = pytest.mark.unit

SRC = Path(services.__file__).resolve().parents[1]


def test_loads_with_the_standard_library_alone() -> None:
    # the scripts read it with the system python3 (scripts/registry.py): no site-packages there
    code = f"import sys; sys.path.insert(0, {str(SRC)!r}); import pinstack_contracts.services"
    done = subprocess.run([sys.executable, "-I", "-S", "-c", code], capture_output=True, text=True, check=False)  # noqa: S603
    assert done.returncode == 0, done.stderr


def test_names_are_unique_and_ports_too() -> None:
    assert len(set(services.NAMES)) == len(services.SERVICES)
    assert len({s.port for s in services.SERVICES}) == len(services.SERVICES)
    assert services.BY_NAME.keys() == set(services.NAMES)


def test_every_topic_is_known_and_consumed_topics_are_produced() -> None:
    produced = {t for s in services.SERVICES for t in s.produces}
    consumed = {t for s in services.SERVICES for t in s.consumes}
    assert produced | consumed <= set(topics.ALL)
    assert consumed <= produced
    for s in services.SERVICES:
        assert not s.consumes or s.worker, f"{s.name} consumes topics without a worker"
        assert not s.produces or s.database, f"{s.name} produces events without an outbox"


def test_start_order_starts_each_service_once_after_what_it_calls() -> None:
    groups = services.start_order()
    assert sorted(n for g in groups for n in g) == sorted(services.NAMES)
    started: set[str] = set()
    for group in groups:
        for name in group:
            assert set(services.BY_NAME[name].calls) <= started, name
        started.update(group)
