"""Pinstack's test harness (dev only, never in an image), and the pytest plugin `pinstack`: real
PostgreSQL, Redis and Kafka for every test worker.

- `pg_database(name, migrations)` creates a fresh database per test worker and migrates it;
- `redis_prefix` is a key namespace unique to the test;
- `kafka_topic(name)` returns a topic name unique to the test worker;
- `spawn_service(...)` runs a real uvicorn server for black-box tests.
A service's conftest defines only `settings` (usually `service_settings(Settings, ...)`); `app`,
`client` and `engine` follow from it, `start`/`worker()` run its worker loops inside the test.
Servers come from `make infra` (scripts/stack.py); the addresses are read from the environment.
Private stacks for fault tests are in `pinstack_testing.stack`, the Kubernetes control plane of the
cluster tier in `pinstack_testing.cluster` (plugins of their own).
"""

from __future__ import annotations

import asyncio
import importlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI

from pinstack_e2e.processes import free_port, stop_process
from pinstack_kit import serve
from pinstack_kit.migrate import migrate

PG_ADMIN_DSN = os.environ.get("PINSTACK_PG_DSN", "postgresql://postgres@127.0.0.1:55432/postgres")
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:56379/0")
KAFKA = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:59092")
SERVICES_DIR = Path(__file__).resolve().parents[3] / "services"


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def database_url(name: str) -> str:
    base, _, _ = PG_ADMIN_DSN.rpartition("/")
    return f"{base}/{name}"


_unreachable: list[str] = []  # why the infra cannot be used, once found out


def infra_unreachable(reason: str | None = None) -> None:
    """End the run with `reason` (or the one found before): at once in a plain run; in an xdist
    worker, where `pytest.exit` crashes the worker into an INTERNALERROR that hides the reason,
    every test that needs the infra fails with it instead (without trying again)."""
    if reason is not None and not _unreachable:
        _unreachable.append(reason)
    if _unreachable:
        if worker_id() == "main":
            pytest.exit(_unreachable[0], 3)
        pytest.fail(_unreachable[0], pytrace=False)


def create_database(name: str, migrations: Path) -> str:
    """Drop and recreate `name`, apply the kit's and the service's migrations; returns its URL."""
    infra_unreachable()
    down = None
    try:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        down = f"PostgreSQL is not reachable at {PG_ADMIN_DSN}: run `make infra` first ({exc})"
    if down:  # outside the handler: the reason alone, not a chained traceback
        infra_unreachable(down)
    url = database_url(name)
    run_migrations(url, migrations)
    return url


def run_migrations(url: str, migrations: Path) -> None:
    """The kit's and the service's migrations on the database at `url`."""
    # A thread of its own: fixtures may call this while an event loop is already running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, migrate(url, migrations)).result()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Callable[[str, Path], str]]:
    """Factory: a migrated database private to this test worker and this run (two runs at once
    must not drop each other's databases), dropped when the run ends."""
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID", uuid.uuid4().hex)[:8]
    made: dict[str, str] = {}

    def make(service: str, migrations: Path) -> str:
        if service not in made:
            made[service] = create_database(f"test_{service}_{worker_id()}_{run}", migrations)
        return made[service]

    yield make
    if not made:
        return
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True, connect_timeout=3) as conn:
        for url in made.values():
            conn.execute(f'DROP DATABASE IF EXISTS "{url.rpartition("/")[2]}" WITH (FORCE)')


@pytest.fixture
def redis_prefix() -> str:
    return f"test:{worker_id()}:{uuid.uuid4().hex[:8]}:"


@pytest.fixture(scope="session")
def kafka_topic() -> Callable[[str], str]:
    run = uuid.uuid4().hex[:8]

    def name(base: str) -> str:
        return f"test.{worker_id()}.{run}.{base}"

    return name


@asynccontextmanager
async def app_client(app: FastAPI, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """In-process client that runs the app's lifespan (engine, Redis) like uvicorn would."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url) as client:
            yield client


@pytest.fixture
def service_settings(
    pg_database: Callable[[str, Path], str], redis_prefix: str, kafka_topic: Callable[[str], str]
) -> Callable[..., Any]:
    """Factory: a service's `settings_class` on its migrated test database (or one of its own,
    `database`), the test Redis under this test's key prefix and Kafka topics of this run (outbox
    rows never name a running stack's topics, whoever relays them); `overrides` win."""

    def make(settings_class: type[Any], *, database: str | None = None, **overrides: Any) -> Any:
        name = settings_class.model_fields["service_name"].default
        return settings_class(
            **{
                "environment": "test",
                "database_url": pg_database(database or name, SERVICES_DIR / name / "migrations"),
                "redis_url": REDIS_URL,
                "redis_key_prefix": redis_prefix,
                "kafka_bootstrap_servers": KAFKA,
                "kafka_topic_prefix": kafka_topic(""),
                **overrides,
            }
        )

    return make


@pytest.fixture
def app(settings: Any) -> FastAPI:
    """The service's app (`pinstack_<name>.main:create_app`) on the `settings` fixture its conftest defines."""
    return importlib.import_module(f"pinstack_{settings.service_name}.main").create_app(settings)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the `app` fixture (the service's create_app(settings))."""
    async with app_client(app) as client:
        yield client


@pytest.fixture
async def redis() -> AsyncIterator[Any]:
    """A client of the test Redis, for tests that look at what a service stored there."""
    from redis.asyncio import Redis

    connection = Redis.from_url(REDIS_URL)
    yield connection
    await connection.aclose()


@contextmanager
def spawn_process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process (a worker, a server) for a black-box test; SIGTERM, then SIGKILL, at the end."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log_file:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log_file, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        # longer than the server's own bound on its graceful shutdown, so SIGKILL never cuts it
        stop_process(proc, grace=serve.GRACEFUL_SHUTDOWN_SECONDS + 5)


def test_log(name: str, log_dir: Path | None = None) -> Path:
    folder = log_dir or Path(os.environ.get("PINSTACK_TEST_LOGS", "/tmp/pinstack-test-logs"))
    return folder / f"{name}-{uuid.uuid4().hex[:6]}.log"


@contextmanager
def spawn_service(
    app_factory: str, env: dict[str, str], *, port: int | None = None, log_dir: Path | None = None
) -> Iterator[str]:
    """Run `app_factory` as a real server, the way every Pinstack server runs
    (`python -m pinstack_kit.serve`); yields its base URL."""
    port = port or free_port()
    log_path = test_log(f"{app_factory.split('.')[0]}-{port}", log_dir)
    with spawn_process(serve.command(app_factory, port=port), env, log_path) as proc:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, proc, log_path)
        yield url


@contextmanager
def spawn_worker(module: str, env: dict[str, str], *, log_dir: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """Run `python -m <module>` (a service's worker) and wait until its loops run (its /healthz
    answers): a test that starts before then shares the CPU with the worker's imports, and on a
    2-core machine starting eight of them stalled requests for seconds."""
    port = free_port()
    log_path = test_log(module.replace(".", "-"), log_dir)
    with spawn_process([sys.executable, "-m", module], {**env, "WORKER_METRICS_PORT": str(port)}, log_path) as proc:
        wait_healthy(f"http://127.0.0.1:{port}", proc, log_path)
        yield proc


def wait_healthy(url: str, proc: subprocess.Popen[Any], log_path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited with {proc.returncode}; see {log_path}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not become healthy in {timeout}s; see {log_path}")


async def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05) -> Any:
    """The one bounded wait for eventual consistency: retries `check` until it returns truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


# ----------------------------------------------------------------------------- workers in the test
# A service's consumers and relay run as tasks of the test on the shared servers, so a test can
# drive them through Kafka and look at their database without spawning processes.


@pytest.fixture
async def engine(settings: Any) -> AsyncIterator[Any]:
    """An engine on the database of the service's `settings` fixture, for tests that look into it."""
    from pinstack_kit.db import create_engine

    engine = create_engine(settings)
    yield engine
    await engine.dispose()


async def _stop_loops(loops: list[Any], tasks: list[asyncio.Task[None]], timeout: float) -> None:
    for loop in loops:
        loop.stop()
    await asyncio.wait_for(asyncio.gather(*tasks), timeout)


Start = Callable[[Any], None]  # the `start` fixture: run one worker loop inside the test


def start_consumers(start: Start, consumers: Callable[..., Any], engine: Any) -> None:
    """Runs the loops a service worker's `consumers(settings)` factory builds, on `engine`."""
    from pinstack_kit.db import sessionmaker

    for loop in consumers(engine, sessionmaker(engine)):
        start(loop)


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """Runs worker loops (relay, consumers) as tasks of the test; stops them at teardown."""
    loops: list[Any] = []
    tasks: list[asyncio.Task[None]] = []

    def run(loop: Any) -> None:
        loops.append(loop)
        tasks.append(asyncio.create_task(loop.run()))

    yield run
    await _stop_loops(loops, tasks, 20)


@asynccontextmanager
async def worker(settings: Any, consumers: Callable[..., list[Any]], *, relay: str | None = None) -> AsyncIterator[Any]:
    """A service's worker while the block runs, as `run_worker` builds it: its `consumers` factory
    and, given a client id, its outbox relay, on an engine of `settings`' database (yielded)."""
    from pinstack_kit.db import create_engine, sessionmaker
    from pinstack_kit.outbox import OutboxRelay, create_producer

    engine = create_engine(settings)
    loops = list(consumers(engine, sessionmaker(engine)))
    if relay:
        loops.append(OutboxRelay(engine, lambda: create_producer(settings.kafka_bootstrap_servers, relay)))
    tasks = [asyncio.create_task(loop.run()) for loop in loops]
    try:
        yield engine
    finally:
        await _stop_loops(loops, tasks, 30)
        await engine.dispose()


async def handle_record(sessions: Callable[[], Any], record: Any, *handlers: Callable[..., Any]) -> None:
    """Hands `record` to consumer handlers in one transaction of its own, then runs the after-commit
    callbacks (the Redis writes), as the consumer runner does (without Kafka or deduplication)."""
    await handle_batch(sessions, [record], *handlers)


async def handle_batch(sessions: Callable[[], Any], records: Sequence[Any], *handlers: Callable[..., Any]) -> None:
    """Hands `records` to consumer handlers in one transaction, in order, as the runner does with
    the records of a partition that arrived together, with the work they deferred to the end of
    the transaction; then runs the after-commit callbacks."""
    from pinstack_kit.db import run_after_commit, run_before_commit

    async with sessions() as session:
        async with session.begin():
            for record in records:
                for handle in handlers:
                    await handle(session, record)
            await run_before_commit(session)
        await run_after_commit(session)


@asynccontextmanager
async def kafka_producer() -> AsyncIterator[Any]:
    """A started producer on the test Kafka, stopped after the block."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=KAFKA)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


@asynccontextmanager
async def kafka_reader(topic: str) -> AsyncIterator[Any]:
    """A started consumer of `topic` from its start, without a group; a short metadata age so a
    topic created after it is found quickly."""
    from aiokafka import AIOKafkaConsumer

    reader = AIOKafkaConsumer(topic, bootstrap_servers=KAFKA, auto_offset_reset="earliest", metadata_max_age_ms=500)
    await reader.start()
    try:
        yield reader
    finally:
        await reader.stop()


@pytest.fixture(scope="session")
def service_server(pg_database: Callable[[str, Path], str]) -> Iterator[Callable[..., str]]:
    """Factory: a real uvicorn server of `pinstack_<name>` on its own migrated test database,
    one per name and test worker (e.g. the users service other services call over HTTP).
    `upstream` wires it to other such servers: `server("posts", USERS_URL=server("users"))`."""
    with ExitStack() as stack:
        urls: dict[str, str] = {}

        def server(name: str, **upstream: str) -> str:
            if name not in urls:
                env = {
                    "ENVIRONMENT": "test",
                    "DATABASE_URL": pg_database(name, SERVICES_DIR / name / "migrations"),
                    "REDIS_URL": REDIS_URL,
                    "REDIS_KEY_PREFIX": f"test:{uuid.uuid4().hex[:8]}:{name}:",
                    **upstream,
                }
                urls[name] = stack.enter_context(spawn_service(f"pinstack_{name}.main:create_app", env))
            return urls[name]

        yield server


@pytest.fixture(scope="session")
def users_url(service_server: Callable[[str], str]) -> str:
    """A real users server: services reach users over HTTP as in production (fallback lookups)."""
    return service_server("users")


@contextmanager
def sql_statements(engine: Any) -> Iterator[list[str]]:
    """Collects the SQL statements `engine` (an AsyncEngine) sends while the block runs."""
    from sqlalchemy import event

    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
