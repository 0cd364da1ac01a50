"""Graceful shutdown: a SIGTERMed server answers the requests it holds and reports not ready
while it drains; a SIGTERMed worker lets its loops finish their unit of work within a bound;
consumers commit what they handled and the relay publishes what it holds when stopped."""

import asyncio
import gc
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

import pinstack_testing as testing
from pinstack_kit import serve
from pinstack_kit.app import GC_YOUNG_THRESHOLD, build_app
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.consumer import ConsumerRunner
from pinstack_kit.db import sessionmaker
from pinstack_kit.outbox import OutboxRelay, create_producer, enqueue
from pinstack_kit.worker import STALL_SECONDS, Worker, serve_health, stalled
from pinstack_testing import KAFKA, eventually, free_port, spawn_process, wait_healthy

HERE = Path(__file__).resolve().parent


def server_args(port: int) -> list[str]:
    """sigterm_targets' app, served as every service is (python -m pinstack_kit.serve)."""
    return serve.command("sigterm_targets:create_app", port=port)


@contextmanager
def serving(log_name: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """sigterm_targets' app under uvicorn, healthy: its URL and process."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = testing.test_log(log_name)
    with spawn_process(server_args(port), {"PYTHONPATH": str(HERE), **(env or {})}, log) as proc:
        wait_healthy(url, proc, log)
        yield url, proc


@pytest.mark.fault
class TestServerSigterm:
    def test_a_request_in_flight_is_answered_and_readiness_drains_first(self) -> None:
        with serving("sigterm-server", {"SHUTDOWN_DRAIN_SECONDS": "1.5"}) as (url, proc):
            assert httpx.get(f"{url}/readyz").status_code == 200
            answers: list[httpx.Response] = []
            slow = threading.Thread(target=lambda: answers.append(httpx.get(f"{url}/slow?seconds=3", timeout=15)))
            slow.start()
            time.sleep(0.5)  # the slow request is in the server's hands
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            draining = httpx.get(f"{url}/readyz", timeout=5)
            assert draining.status_code == 503
            assert draining.json() == {"status": 503, "message": "not ready: shutdown (ShuttingDown)"}
            assert draining.headers["connection"] == "close"
            assert httpx.get(f"{url}/healthz", timeout=5).status_code == 200  # still serving while draining
            slow.join(timeout=15)
            assert [(r.status_code, r.json()) for r in answers] == [(200, {"status": 200, "data": {"slept": 3.0}})]
            proc.wait(timeout=10)
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"{url}/healthz", timeout=2)

    def test_without_drain_time_the_request_in_flight_is_still_answered(self) -> None:
        with serving("sigterm-server") as (url, proc):
            answers: list[httpx.Response] = []
            slow = threading.Thread(target=lambda: answers.append(httpx.get(f"{url}/slow?seconds=2", timeout=15)))
            slow.start()
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            with pytest.raises(httpx.ConnectError):  # no new connections once shutting down
                httpx.get(f"{url}/healthz", timeout=2)
            slow.join(timeout=15)
            assert [r.status_code for r in answers] == [200]
            assert proc.wait(timeout=10) in (0, -signal.SIGTERM)


class TestServedHeap:
    @pytest.mark.unit
    def test_a_served_app_freezes_what_startup_built_and_collects_less_often(self) -> None:
        with serving("served-heap") as (url, proc):
            collector = httpx.get(f"{url}/gc").json()["data"]
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        assert collector["threshold"][0] == GC_YOUNG_THRESHOLD
        assert collector["frozen"] > 10_000  # modules, routes, models: tens of thousands of objects

    @pytest.mark.unit
    async def test_an_app_driven_in_process_leaves_the_collector_alone(self) -> None:
        """Tests build many apps in one process: frozen, each one's cycles would never be freed."""
        threshold, frozen = gc.get_threshold(), gc.get_freeze_count()
        app = build_app(
            BaseServiceSettings(service_name="heap-test", environment="test"),
            title="t",
            routers=[],
            use_database=False,
            use_redis=False,
        )
        async with testing.app_client(app) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert (gc.get_threshold(), gc.get_freeze_count()) == (threshold, frozen)


@pytest.mark.fault
class TestWorkerSigterm:
    def test_loops_finish_their_work_and_a_stuck_one_is_cancelled_within_the_grace_bound(self) -> None:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and test file
            [sys.executable, str(HERE / "sigterm_targets.py"), "3"],
            env={**os.environ, "PYTHONPATH": str(HERE)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert proc.stdout is not None
            seen = [proc.stdout.readline(), proc.stdout.readline()]
            assert sorted(seen) == ["polite running\n", "stuck running\n"]
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, out
        assert "polite finished its work" in out
        assert "stuck finished" not in out
        assert "did not stop in time: cancelled" in out or "worker exited" in out
        assert 2.5 <= took < 10, out  # waited the grace bound for the stuck loop, no longer


@pytest.mark.fault
class TestWorkerMetrics:
    @pytest.mark.parametrize("environment", ["production", "development"])
    def test_the_worker_serves_its_metrics_port_in_every_environment(self, environment: str) -> None:
        port = free_port()
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and test file
            [sys.executable, str(HERE / "sigterm_targets.py"), "1"],
            env={**os.environ, "PYTHONPATH": str(HERE), "ENVIRONMENT": environment, "WORKER_METRICS_PORT": str(port)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline().endswith("running\n")  # the loops run: the server is up
            response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
            assert response.status_code == 200
            assert "python_info" in response.text
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert (health.status_code, health.json()) == (200, {"status": "ok", "stalled": []})
        finally:
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out


class Beating:
    def __init__(self, beat: float) -> None:
        self.beat = beat

    async def run(self) -> None: ...

    def stop(self) -> None: ...


@pytest.mark.unit
class TestWorkerLiveness:
    def test_a_loop_silent_past_the_bound_is_stalled_and_one_without_a_heartbeat_never_is(self) -> None:
        now = 1000.0
        fresh, stuck, sleeper = Beating(now - 1), Beating(now - STALL_SECONDS - 1), SlowToStopLike()
        assert stalled([fresh, sleeper], now) == []
        assert stalled([fresh, stuck, sleeper], now) == ["Beating"]

    def test_healthz_answers_503_naming_the_stalled_loop(self) -> None:
        port = free_port()
        stuck = Beating(time.monotonic() - STALL_SECONDS - 5)
        server = serve_health(port, [stuck])
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            assert (response.status_code, response.json()) == (503, {"status": "stalled", "stalled": ["Beating"]})
            stuck.beat = time.monotonic()
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
        finally:
            server.shutdown()


class Polite:
    """Runs until stopped, then finishes its unit of work."""

    def __init__(self) -> None:
        self.running, self.stopping, self.finished = asyncio.Event(), asyncio.Event(), False

    async def run(self) -> None:
        self.running.set()
        await self.stopping.wait()
        await asyncio.sleep(0.1)
        self.finished = True

    def stop(self) -> None:
        self.stopping.set()


class Crashing:
    async def run(self) -> None:
        await asyncio.sleep(0.05)
        raise RuntimeError("bad record handling")

    def stop(self) -> None: ...


@pytest.mark.integration
class TestInlineWorker:
    """WORKER_INLINE (how `make up` runs the workers): the API's process runs the loops."""

    async def test_the_api_runs_its_loops_fails_liveness_when_one_crashes_and_stops_them_on_exit(
        self, kit_database: str
    ) -> None:
        polite = Polite()
        made: list[object] = []

        def consumers(settings: BaseServiceSettings):  # type: ignore[no-untyped-def]
            def build(engine: AsyncEngine, sessions: object) -> list[object]:
                made.extend([polite, Crashing()])
                return made

            return build

        worker = Worker(consumers, relay=False)
        settings = BaseServiceSettings(
            service_name="inline-test", environment="test", database_url=kit_database, worker_inline=True
        )
        app = build_app(settings, title="t", routers=[], use_redis=False, worker=worker)
        async with testing.app_client(app) as client:
            await asyncio.wait_for(polite.running.wait(), 5)
            await eventually(lambda: _status(client, 503), timeout=5)
            body = (await client.get("/healthz")).json()
            assert "worker loops crashed or stalled: Crashing" in str(body), body
        assert polite.finished, "the lifespan's end stopped the loop and let it finish its work"
        assert len(made) == 2

    async def test_without_worker_inline_the_api_runs_no_loops(self, kit_database: str) -> None:
        built: list[str] = []
        worker = Worker(lambda settings: lambda engine, sessions: built.append("built") or [], relay=False)
        settings = BaseServiceSettings(service_name="inline-test", environment="test", database_url=kit_database)
        app = build_app(settings, title="t", routers=[], use_redis=False, worker=worker)
        async with testing.app_client(app) as client:
            assert (await client.get("/healthz")).status_code == 200
        assert built == []


async def _status(client: httpx.AsyncClient, status: int) -> bool:
    return (await client.get("/healthz")).status_code == status


class SlowToStopLike:
    """A loop with no heartbeat (housekeeping sleeps for an hour between rounds)."""

    async def run(self) -> None: ...

    def stop(self) -> None: ...


async def consumed(engine: AsyncEngine, topic: str) -> int:
    async with engine.connect() as conn:
        return int(await conn.scalar(text("SELECT count(*) FROM stop_consumed WHERE topic = :t"), {"t": topic}) or 0)


@pytest.mark.integration
class TestConsumerStop:
    async def test_stop_finishes_the_record_in_hand_and_commits_what_was_handled(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE IF NOT EXISTS stop_consumed (topic text, value text)"))
        topic = kafka_topic("stop-in")
        group = f"{topic}-group"
        producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
        await producer.start()
        try:
            for i in range(60):
                await producer.send(topic, value=str(i).encode(), key=b"k", headers=[("event_id", f"e{i}".encode())])
            await producer.flush()
        finally:
            await producer.stop()

        async def slow_handler(session: AsyncSession, record: ConsumerRecord) -> None:
            await asyncio.sleep(0.05)
            await session.execute(
                text("INSERT INTO stop_consumed (topic, value) VALUES (:t, :v)"),
                {"t": record.topic, "v": record.value.decode()},
            )

        def runner() -> ConsumerRunner:
            return ConsumerRunner(
                bootstrap_servers=KAFKA,
                group_id=group,
                topics=[topic],
                handler=slow_handler,
                sessionmaker=sessionmaker(engine),
                producer_factory=lambda: create_producer(KAFKA, "stop-dlt"),
                dead_letter_topic=f"{topic}.dlt",
            )

        first = runner()
        task = asyncio.create_task(first.run())
        await eventually(lambda: _at_least(consumed(engine, topic), 5), timeout=30.0)
        first.stop()
        await asyncio.wait_for(task, 5)  # not the rest of the 60-record batch
        handled = await consumed(engine, topic)
        assert 5 <= handled < 60
        assert await committed(group, topic) == handled  # every handled record, and only those

        second = runner()
        task = asyncio.create_task(second.run())
        await eventually(lambda: _at_least(consumed(engine, topic), 60), timeout=30.0)
        second.stop()
        await asyncio.wait_for(task, 5)
        async with engine.connect() as conn:
            values = (await conn.execute(text("SELECT value FROM stop_consumed WHERE topic = :t"), {"t": topic})).all()
        assert sorted(int(v) for (v,) in values) == list(range(60))  # nothing lost, nothing twice


async def _at_least(value: Awaitable[int], n: int) -> bool:
    return await value >= n


async def committed(group: str, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=KAFKA)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic)


@pytest.mark.integration
class TestRelayStop:
    async def test_stop_publishes_the_batch_in_hand_and_marks_exactly_what_was_published(
        self,
        engine: AsyncEngine,
        kafka_topic,  # type: ignore[no-untyped-def]
    ) -> None:
        topic = kafka_topic("relay-stop")
        async with sessionmaker(engine)() as session, session.begin():
            for i in range(2000):
                await enqueue(session, topic, "k", f"m{i}".encode())
        relay = OutboxRelay(engine, lambda: create_producer(KAFKA, "relay-stop"), batch_size=50)
        task = asyncio.create_task(relay.run())
        await eventually(lambda: _sent(engine, topic, at_least=1), timeout=20.0)
        relay.stop()
        await asyncio.wait_for(task, 10)
        sent = await _sent(engine, topic)
        assert 0 < sent < 2000  # it stopped draining the backlog
        assert await _published(topic, sent) == sent  # marked sent <=> on the broker


async def _sent(engine: AsyncEngine, topic: str, at_least: int = 0) -> int:
    async with engine.connect() as conn:
        n = int(
            await conn.scalar(
                text("SELECT count(*) FROM outbox WHERE topic = :t AND sent_at IS NOT NULL"), {"t": topic}
            )
            or 0
        )
    return n if n >= at_least else 0


async def _published(topic: str, expected: int) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            seen += sum(len(records) for records in batch.values())
            if not batch and seen >= expected:
                break
        return seen
    finally:
        await consumer.stop()
