"""Shedding, deadlines and breakers: the bulkhead, the deadline that travels with a request and
stops its commit, breakers per route, and the log line every failure leaves."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import psycopg
import pytest
from aiohttp import web
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from pinstack_kit import deadline
from pinstack_kit.config import BaseServiceSettings
from pinstack_kit.consumer import ConsumerRunner
from pinstack_kit.db import SessionDep, before_commit, sessionmaker
from pinstack_kit.deadline import DeadlineExceeded, parse_budget
from pinstack_kit.envelope import ok
from pinstack_kit.errors import AppError, Overloaded, install_error_handlers
from pinstack_kit.http_client import UPSTREAM_REQUESTS, ServiceClient, error_from_response
from pinstack_kit.migrate import plain_dsn
from pinstack_kit.observability import JsonFormatter, OutageLog, RepeatFilter, RequestMiddleware
from pinstack_kit.outbox import enqueue
from pinstack_kit.overload import Bulkhead
from pinstack_kit.redis import create_redis
from pinstack_testing import REDIS_URL, free_port


@asynccontextmanager
async def busy(**sizes: Any) -> AsyncIterator[Bulkhead]:
    """A bulkhead with one slot, taken by a job that ends when the block does (jobs still queued
    then run: the bulkhead stays open)."""
    release = threading.Event()
    bulkhead = Bulkhead("test", limit=1, **sizes)
    running = asyncio.create_task(bulkhead.run(release.wait, 5))
    await asyncio.sleep(0.05)
    try:
        yield bulkhead
    finally:
        release.set()
        await running


@contextmanager
def deadline_in(seconds: float) -> Iterator[None]:
    token = deadline._current.set(deadline.Deadline(time.monotonic() + seconds))
    try:
        yield
    finally:
        deadline._current.reset(token)


@pytest.mark.unit
class TestBulkhead:
    async def test_runs_up_to_its_limit_queues_a_few_and_sheds_the_rest_at_once(self) -> None:
        async with busy(queue=1, max_wait=5.0) as bulkhead:
            queued = asyncio.create_task(bulkhead.run(lambda: "queued"))
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded):
                bulkhead.admit()  # what `run` would say, asked before any work
            started = time.perf_counter()
            with pytest.raises(Overloaded) as shed:
                await bulkhead.run(lambda: "shed")
            assert time.perf_counter() - started < 0.05
        assert await queued == "queued"
        bulkhead.admit()  # room again
        assert shed.value.status == 503 and shed.value.message == "external service unavailable"
        assert shed.value.headers == {"Retry-After": "1"}
        assert "queue full" in shed.value.reason

    async def test_sheds_when_the_expected_wait_is_too_long(self) -> None:
        async with busy(queue=100, max_wait=0.5) as bulkhead:
            bulkhead.job_seconds = 0.2  # measured: two waiting would wait 0.4 s, a third 0.6 s
            waiting = [asyncio.create_task(bulkhead.run(lambda: "ok")) for _ in range(2)]
            await asyncio.sleep(0.05)
            with pytest.raises(Overloaded) as shed:
                await bulkhead.run(lambda: "too late")
        assert "queue too slow" in shed.value.reason
        assert await asyncio.gather(*waiting) == ["ok", "ok"]

    async def test_a_misestimated_wait_ends_in_a_refusal_well_within_a_second(self) -> None:
        """Admitted on an estimate the job in hand then overran (jobs slow down as a burst takes
        the machine): the waiter gives up a quarter past `max_wait`, so the refusal still counts
        as immediate (bench.run overload: within a second)."""
        async with busy(queue=5, max_wait=0.5) as bulkhead:
            bulkhead.job_seconds = 0.01  # the estimate: a wait of 10 ms
            started = time.perf_counter()
            with pytest.raises(Overloaded) as shed:
                await bulkhead.run(lambda: "never")
            waited = time.perf_counter() - started
        assert "waited too long" in shed.value.reason
        assert 0.6 < waited < 0.75, waited

    async def test_a_wait_ends_with_the_request_deadline(self) -> None:
        async with busy(queue=5, max_wait=5.0) as bulkhead:
            started = time.perf_counter()
            with deadline_in(0.2), pytest.raises(DeadlineExceeded) as late:
                await bulkhead.run(lambda: "never")
            assert 0.15 < time.perf_counter() - started < 1.0
        assert late.value.status == 504


class TestDeadline:
    @pytest.mark.unit
    @pytest.mark.parametrize(("value", "seconds"), [(b"1500", 1.5), (b"0", 0.0), (b"99999999", 300.0)])
    def test_budget_header_is_milliseconds_capped(self, value: bytes, seconds: float) -> None:
        assert parse_budget(value) == seconds

    @pytest.mark.unit
    @pytest.mark.parametrize("value", [b"", b"-5", b"1.5", b"soon", b"1e3", b"9" * 40])
    def test_anything_else_means_no_deadline(self, value: bytes) -> None:
        assert parse_budget(value) is None

    @pytest.mark.unit
    def test_calls_hand_on_what_is_left_less_a_margin(self) -> None:
        assert deadline.outgoing(5.0) == (5.0, {})  # no deadline: the client's own timeout
        with deadline_in(2.0):
            timeout, header = deadline.outgoing(5.0)
            assert 2.4 < timeout <= 2.5  # the callee's answer may arrive within the grace
            assert 1800 < int(header["X-Request-Timeout-Ms"]) <= 1900  # 5 % kept for the answer
            deadline.current().at = time.monotonic() - 0.01  # type: ignore[union-attr,unused-ignore]
            with pytest.raises(DeadlineExceeded):
                deadline.outgoing(5.0)

    @pytest.mark.integration
    async def test_a_request_past_its_deadline_commits_nothing_unless_it_must_finish(self, engine: AsyncEngine) -> None:
        app = FastAPI()
        install_error_handlers(app)
        app.add_middleware(RequestMiddleware)
        app.state.sessionmaker = sessionmaker(engine)
        topic = f"deadline-{time.monotonic_ns()}"

        @app.post("/write/{key}")
        async def write(key: str, session: SessionDep, finish: bool = False) -> object:
            await enqueue(session, topic, key, b"{}")
            if finish:
                deadline.must_finish()
            await asyncio.sleep(0.3)
            return ok()

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            budget = {"X-Request-Timeout-Ms": "100"}
            late = await client.post("/write/late", headers=budget)
            finished = await client.post("/write/finished", params={"finish": True}, headers=budget)
            unbounded = await client.post("/write/unbounded")
        assert late.status_code == 504
        assert late.json() == {"status": 504, "message": "external service timeout"}
        assert finished.status_code == 200 and unbounded.status_code == 200
        async with engine.connect() as conn:
            keys = (await conn.execute(text("SELECT key FROM outbox WHERE topic = :t"), {"t": topic})).scalars()
            assert sorted(keys) == ["finished", "unbounded"]

    @pytest.mark.integration
    async def test_work_deferred_to_the_commit_runs_when_the_request_commits(self, engine: AsyncEngine) -> None:
        """`before_commit` in a request: done in its transaction when it commits, also when it
        answers with an error that must commit; not when the error rolls it back."""

        class Kept(AppError):
            status, message, commit = 401, "kept", True

        class Dropped(AppError):
            status, message = 409, "dropped"

        app = FastAPI()
        install_error_handlers(app)
        app.state.sessionmaker = sessionmaker(engine)
        topic = f"deferred-{time.monotonic_ns()}"

        @app.post("/write/{key}")
        async def write(key: str, session: SessionDep, fail: str = "") -> object:
            before_commit(session, lambda: enqueue(session, topic, key, b"{}"))
            if fail:
                raise {"kept": Kept, "dropped": Dropped}[fail]()
            return ok()

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = [
                await client.post("/write/plain"),
                await client.post("/write/kept", params={"fail": "kept"}),
                await client.post("/write/dropped", params={"fail": "dropped"}),
            ]
        assert [answer.status_code for answer in answers] == [200, 401, 409]
        async with engine.connect() as conn:
            keys = (await conn.execute(text("SELECT key FROM outbox WHERE topic = :t"), {"t": topic})).scalars()
            assert sorted(keys) == ["kept", "plain"]

    @pytest.mark.integration
    async def test_a_request_that_lost_a_deadlock_is_a_503_that_says_so(
        self, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Postgres aborting a request's transaction to break a deadlock (SQLSTATE 40P01, raised
        here by the server itself) is a 503 to the client like an outage, but its log line says
        what happened: nothing is down."""
        app = FastAPI()
        install_error_handlers(app)
        app.state.sessionmaker = sessionmaker(engine)

        @app.post("/write")
        async def write(session: SessionDep) -> object:
            await session.execute(
                text("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$")
            )
            return ok()

        transport = httpx.ASGITransport(app=app)
        with caplog.at_level(logging.WARNING, logger="pinstack.db"):
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                answer = await client.post("/write")
        assert answer.status_code == 503
        assert answer.json() == {"status": 503, "message": "database unavailable"}
        said = [r.getMessage() for r in caplog.records if r.name == "pinstack.db"]
        assert len(said) == 1 and said[0].startswith("transaction aborted by the database: deadlock detected"), said


async def _upstream_handler(request: web.Request) -> web.Response:
    kind = request.match_info["kind"]
    if kind == "slow":
        await asyncio.sleep(1.0)
    if kind == "shed":
        return web.json_response(
            {"status": 503, "message": "external service unavailable"}, status=503, headers={"Retry-After": "1"}
        )
    if kind == "boom":
        return web.json_response({"status": 500, "message": "internal server error"}, status=500)
    if kind == "budget":
        return web.json_response({"status": 200, "data": request.headers.get("X-Request-Timeout-Ms")})
    return web.json_response({"status": 200, "data": kind})


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """`app` served on a free loopback port; yields its base URL."""
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_get("/{kind}", _upstream_handler)
    async with serving(app) as url:
        yield url


@pytest.fixture
def breaker_log() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    logger = logging.getLogger("pinstack.http_client")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(logging.NOTSET)


@pytest.mark.integration
class TestBreakers:
    async def test_a_slow_route_opens_its_own_breaker_only(
        self, upstream: str, breaker_log: list[logging.LogRecord]
    ) -> None:
        client = ServiceClient("up", upstream, timeout=0.1, retries=0)
        try:
            for _ in range(5):
                with pytest.raises(Exception) as timed_out:
                    await client.request("GET", "/slow")
                assert getattr(timed_out.value, "status", None) == 504
            started = time.perf_counter()
            with pytest.raises(Exception) as refused:
                await client.request("GET", "/slow")
            assert time.perf_counter() - started < 0.05
            assert getattr(refused.value, "status", None) == 503
            assert getattr(refused.value, "headers", {}).get("Retry-After") in {"5", "4"}
            assert (await client.request("GET", "/fast")).status_code == 200  # other routes go on
        finally:
            await client.aclose()
        opened = [r for r in breaker_log if r.getMessage() == "circuit opened"]
        assert len(opened) == 1
        assert opened[0].__dict__["fields"] == {
            "upstream": "up",
            "route": "GET /slow",
            "failures": 5,
            "cause": "timeout",
        }

    async def test_shed_answers_open_nothing_and_keep_their_retry_after(self, upstream: str) -> None:
        client = ServiceClient("up", upstream, retries=0)
        try:
            for _ in range(10):
                response = await client.request("GET", "/shed")
                assert response.status_code == 503
            error = error_from_response(response)
            assert (error.status, error.headers) == (503, {"Retry-After": "1"})
            for _ in range(5):
                assert (await client.request("GET", "/boom")).status_code == 500
            with pytest.raises(Exception, match="external service unavailable"):
                await client.request("GET", "/boom")  # a failing route is cut off...
            assert (await client.request("GET", "/shed")).status_code == 503  # ...the shedding one is not
        finally:
            await client.aclose()

    async def test_connection_failures_open_the_whole_upstream(self, breaker_log: list[logging.LogRecord]) -> None:
        client = ServiceClient("gone", f"http://127.0.0.1:{free_port()}", retries=0)
        try:
            for path in ("/a", "/b", "/c", "/d", "/e"):
                with pytest.raises(Exception, match="external service unavailable"):
                    await client.request("GET", path)
            assert client.breaker.opened_at is not None
            with pytest.raises(Exception) as refused:
                await client.request("GET", "/another-route")
            assert "circuit to gone * open" in getattr(refused.value, "reason", "")
        finally:
            await client.aclose()
        assert [r.__dict__["fields"]["route"] for r in breaker_log if r.getMessage() == "circuit opened"] == ["*"]

    async def test_a_call_that_never_connected_is_tried_again_whatever_its_method(self) -> None:
        client = ServiceClient("nowhere", f"http://127.0.0.1:{free_port()}", retries=1)
        counted = UPSTREAM_REQUESTS.labels("nowhere", "POST", "unavailable")
        before = counted._value.get()
        try:
            with pytest.raises(Exception, match="external service unavailable"):
                await client.request("POST", "/comments", json={"content": "x"})
        finally:
            await client.aclose()
        assert counted._value.get() - before == 2  # refused twice: nothing was sent either time

    async def test_a_write_cut_off_after_it_was_sent_is_not_sent_again(self) -> None:
        """The server may have acted on it: a second copy could write twice."""
        seen: list[str] = []

        async def hang_up(request: web.Request) -> web.StreamResponse:
            seen.append(await request.text())
            assert request.transport is not None
            request.transport.close()
            return web.Response()

        app = web.Application()
        app.router.add_post("/comments", hang_up)
        async with serving(app) as url:
            client = ServiceClient("hangs-up", url, retries=1)
            try:
                with pytest.raises(Exception, match="external service unavailable"):
                    await client.request("POST", "/comments", json={"content": "x"})
            finally:
                await client.aclose()
        assert len(seen) == 1

    async def test_the_deadline_travels_with_the_call(self, upstream: str) -> None:
        client = ServiceClient("up", upstream)
        try:
            with deadline_in(1.0):
                sent = int((await client.request("GET", "/budget")).json()["data"])
            assert 850 <= sent <= 950
        finally:
            await client.aclose()


@pytest.mark.unit
class TestFailureLog:
    @pytest.fixture
    def lines(self) -> Iterator[io.StringIO]:
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter("test"))
        logger = logging.getLogger("pinstack.access")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)  # what LOG_LEVEL=INFO (the default) gives a service
        yield out
        logger.removeHandler(handler)
        logger.setLevel(logging.NOTSET)

    def app(self, access_log: bool) -> FastAPI:
        app = FastAPI()
        install_error_handlers(app)
        app.add_middleware(RequestMiddleware, access_log=access_log)

        @app.get("/shed")
        async def shed() -> None:
            raise Overloaded("hashing queue full: 2 running, 4 waiting")

        @app.get("/fine")
        async def fine() -> object:
            return ok()

        return app

    async def test_every_failure_leaves_a_line_with_its_request_id_and_reason(self, lines: io.StringIO) -> None:
        transport = httpx.ASGITransport(app=self.app(access_log=False))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            shed = await client.get("/shed", headers={"X-Request-Id": "req-42"})
            assert (await client.get("/fine")).status_code == 200
        assert shed.status_code == 503 and shed.headers["Retry-After"] == "1"
        entries = [json.loads(line) for line in lines.getvalue().splitlines()]
        assert len(entries) == 1  # success is not logged while the access log is off
        assert entries[0]["request_id"] == "req-42"
        assert entries[0]["level"] == "WARNING"
        assert (entries[0]["status"], entries[0]["route"]) == (503, "/shed")
        assert entries[0]["reason"] == "hashing queue full: 2 running, 4 waiting"

    async def test_the_access_log_writes_a_line_per_request(self, lines: io.StringIO) -> None:
        transport = httpx.ASGITransport(app=self.app(access_log=True))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/fine")
        (entry,) = [json.loads(line) for line in lines.getvalue().splitlines()]
        assert (entry["level"], entry["method"], entry["route"], entry["status"]) == ("INFO", "GET", "/fine", 200)
        assert entry["request_id"] and entry["ms"] >= 0


class TestOutageLog:
    @pytest.mark.integration
    async def test_a_kafka_outage_is_one_line_not_one_per_retry(self) -> None:
        """A consumer whose broker is down retries several times a second; its log and
        aiokafka's (through the filter `configure_logging` installs) say so once."""
        out = io.StringIO()
        handler = logging.StreamHandler(out)
        handler.setFormatter(JsonFormatter("test"))
        handler.addFilter(RepeatFilter(("aiokafka",)))
        root = logging.getLogger()
        root.addHandler(handler)
        runner = ConsumerRunner(
            bootstrap_servers=f"127.0.0.1:{free_port()}",
            group_id="outage-test",
            topics=["nowhere"],
            handler=lambda session, record: asyncio.sleep(0),
            sessionmaker=None,  # type: ignore[arg-type,unused-ignore]  # never reached: nothing is consumed
            producer_factory=lambda: None,  # type: ignore[arg-type,return-value,unused-ignore]
            dead_letter_topic="nowhere.dlt",
        )
        task = asyncio.create_task(runner.run())
        try:
            await asyncio.sleep(3.0)
        finally:
            runner.stop()
            await task
            root.removeHandler(handler)
        entries = [json.loads(line) for line in out.getvalue().splitlines()]
        ours = [e for e in entries if e["logger"] == "pinstack.consumer" and e["level"] == "WARNING"]
        assert runner.kafka_outage.retries >= 2  # it did retry...
        assert len(ours) == 1, ours  # ...and said so once
        assert ours[0]["msg"].startswith("consumer outage-test: kafka unavailable")
        library = [e["msg"] for e in entries if e["logger"].startswith("aiokafka")]
        assert len(library) == len(set(library)) <= 2, library

    @pytest.mark.unit
    def test_back_again_is_one_line_with_how_long_it_took(self, caplog: pytest.LogCaptureFixture) -> None:
        outage = OutageLog(logging.getLogger("test.outage"), "redis")
        with caplog.at_level(logging.DEBUG, "test.outage"):
            outage.up()  # nothing was down: nothing to say
            for _ in range(50):
                outage.down(ConnectionError("refused"))
            outage.up()
        lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
        assert lines[0] == ("WARNING", "redis unavailable (ConnectionError: refused); retrying until it is back")
        assert lines[1][0] == "INFO" and lines[1][1].startswith("redis available again after")
        assert lines[1][1].endswith("(49 retries)") and len(lines) == 2


async def test_a_redis_connection_the_server_closed_is_replaced_not_reported() -> None:
    """After a Redis restart every pooled connection is dead: the first command on one is retried
    on a new connection. (The sync `redis.retry.Retry` given to the asyncio client never retried:
    on the node, a like answered 503 18 s after Redis came back.)"""
    redis = create_redis(BaseServiceSettings(service_name="kit-test", redis_url=REDIS_URL))
    admin = Redis.from_url(REDIS_URL)
    try:
        key = f"kit-test:{uuid.uuid4().hex}"
        await redis.set(key, "kept", px=60_000)
        assert await admin.client_kill_filter(_id=await redis.client_id()) == 1
        assert await redis.mget([key]) == [b"kept"]
    finally:
        await redis.aclose()
        await admin.aclose()


async def test_a_postgres_connection_the_server_closed_is_replaced_not_reported(
    engine: AsyncEngine, kit_database: str
) -> None:
    """After a Postgres restart (here: the backend terminated) a pooled connection is dead: the
    checkout sees the socket the server closed and connects afresh, with no round trip on a live
    connection and no failed request."""
    factory = sessionmaker(engine)

    async def backend() -> int:
        async with factory() as session:
            return int(await session.scalar(text("SELECT pg_backend_pid()")) or 0)

    first = await backend()
    assert await backend() == first  # the pool's one connection, kept while it lives
    async with await psycopg.AsyncConnection.connect(plain_dsn(kit_database), autocommit=True) as admin:
        assert (await (await admin.execute("SELECT pg_terminate_backend(%s)", (first,))).fetchone()) == (True,)
        for _ in range(100):  # the backend leaves asynchronously
            left = await (
                await admin.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (first,))
            ).fetchone()
            if left == (0,):
                break
            await asyncio.sleep(0.02)
        assert left == (0,), f"backend {first} still there after 2 s"
    second = await backend()
    assert second not in (0, first)
    assert await backend() == second
